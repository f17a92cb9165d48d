from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields, ScheduleFields, TaskFields


class Schedule(BaseModel):
    schedule: Optional["ScheduleSchedule"]


class ScheduleSchedule(ScheduleFields):
    runs: "ScheduleScheduleRuns"


class ScheduleScheduleRuns(BaseModel):
    edges: list["ScheduleScheduleRunsEdges"]
    page_info: "ScheduleScheduleRunsPageInfo" = Field(alias="pageInfo")
    total_count: int = Field(alias="totalCount")


class ScheduleScheduleRunsEdges(BaseModel):
    cursor: str
    node: "ScheduleScheduleRunsEdgesNode"


ScheduleScheduleRunsEdgesNode = TaskFields
ScheduleScheduleRunsPageInfo = PageFields
Schedule.model_rebuild()
ScheduleSchedule.model_rebuild()
ScheduleScheduleRuns.model_rebuild()
ScheduleScheduleRunsEdges.model_rebuild()
