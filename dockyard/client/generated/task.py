from typing import Optional

from .base_model import BaseModel
from .fragments import (  # noqa: F401
    TaskFields,
    TaskFieldsDependsOn,
    TaskFieldsInputFile,
    TaskFieldsOutputFiles,
    TaskFieldsSchedule,
    TaskFieldsWorkflow,
)


class Task(BaseModel):
    task: Optional["TaskTask"]


class TaskTask(TaskFields):
    logs: str


Task.model_rebuild()
