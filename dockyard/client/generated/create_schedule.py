from pydantic import Field

from .base_model import BaseModel
from .fragments import ScheduleFields


class CreateSchedule(BaseModel):
    create_schedule: "CreateScheduleCreateSchedule" = Field(alias="createSchedule")


CreateScheduleCreateSchedule = ScheduleFields
CreateSchedule.model_rebuild()
