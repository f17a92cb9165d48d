from pydantic import Field

from .base_model import BaseModel
from .fragments import ScheduleFields


class PauseSchedule(BaseModel):
    pause_schedule: "PauseSchedulePauseSchedule" = Field(alias="pauseSchedule")


PauseSchedulePauseSchedule = ScheduleFields
PauseSchedule.model_rebuild()
