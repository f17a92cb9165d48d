from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields, TaskFields


class Tasks(BaseModel):
    tasks: "TasksTasks"


class TasksTasks(BaseModel):
    edges: list["TasksTasksEdges"]
    page_info: "TasksTasksPageInfo" = Field(alias="pageInfo")
    total_count: int = Field(alias="totalCount")


class TasksTasksEdges(BaseModel):
    cursor: str
    node: "TasksTasksEdgesNode"


TasksTasksEdgesNode = TaskFields
TasksTasksPageInfo = PageFields
Tasks.model_rebuild()
TasksTasks.model_rebuild()
TasksTasksEdges.model_rebuild()
