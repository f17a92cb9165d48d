from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields, ScheduleFields


class Schedules(BaseModel):
    schedules: "SchedulesSchedules"


class SchedulesSchedules(BaseModel):
    edges: list["SchedulesSchedulesEdges"]
    page_info: "SchedulesSchedulesPageInfo" = Field(alias="pageInfo")
    total_count: int = Field(alias="totalCount")


class SchedulesSchedulesEdges(BaseModel):
    cursor: str
    node: "SchedulesSchedulesEdgesNode"


SchedulesSchedulesEdgesNode = ScheduleFields
SchedulesSchedulesPageInfo = PageFields
Schedules.model_rebuild()
SchedulesSchedules.model_rebuild()
SchedulesSchedulesEdges.model_rebuild()
