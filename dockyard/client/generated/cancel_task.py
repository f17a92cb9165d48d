from pydantic import Field

from .base_model import BaseModel
from .fragments import TaskFields


class CancelTask(BaseModel):
    cancel_task: "CancelTaskCancelTask" = Field(alias="cancelTask")


CancelTaskCancelTask = TaskFields
CancelTask.model_rebuild()
