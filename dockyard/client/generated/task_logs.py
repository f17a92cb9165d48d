from datetime import datetime

from pydantic import Field

from .base_model import BaseModel


class TaskLogs(BaseModel):
    task_logs: "TaskLogsTaskLogs" = Field(alias="taskLogs")


class TaskLogsTaskLogs(BaseModel):
    task_id: str = Field(alias="taskId")
    stream: str
    text: str
    at: datetime


TaskLogs.model_rebuild()
