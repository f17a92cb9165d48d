from pydantic import Field

from .base_model import BaseModel


class DeleteTask(BaseModel):
    delete_task: bool = Field(alias="deleteTask")
