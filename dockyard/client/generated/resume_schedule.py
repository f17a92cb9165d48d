from pydantic import Field

from .base_model import BaseModel
from .fragments import ScheduleFields


class ResumeSchedule(BaseModel):
    resume_schedule: "ResumeScheduleResumeSchedule" = Field(alias="resumeSchedule")


ResumeScheduleResumeSchedule = ScheduleFields
ResumeSchedule.model_rebuild()
