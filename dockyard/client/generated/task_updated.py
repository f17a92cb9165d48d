from pydantic import Field

from .base_model import BaseModel
from .fragments import TaskFields


class TaskUpdated(BaseModel):
    task_updated: "TaskUpdatedTaskUpdated" = Field(alias="taskUpdated")


TaskUpdatedTaskUpdated = TaskFields
TaskUpdated.model_rebuild()
