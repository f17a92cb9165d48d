from pydantic import Field

from .base_model import BaseModel
from .fragments import TaskFields


class CreateTask(BaseModel):
    create_task: "CreateTaskCreateTask" = Field(alias="createTask")


CreateTaskCreateTask = TaskFields
CreateTask.model_rebuild()
