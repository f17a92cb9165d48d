from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    MisfirePolicy,
    NotificationChannel,
    NotificationEvent,
    OverlapPolicy,
    TriggerRule,
)


class CreateTaskInput(BaseModel):
    name: Optional[str] = None
    image: str
    command: list[str]
    env: Optional[list["EnvVarInput"]] = None
    timeout_seconds: Optional[int] = Field(alias="timeoutSeconds", default=None)
    cpu_limit: Optional[float] = Field(alias="cpuLimit", default=None)
    memory_limit_mb: Optional[int] = Field(alias="memoryLimitMb", default=None)
    max_retries: Optional[int] = Field(alias="maxRetries", default=None)
    depends_on: Optional[list[str]] = Field(alias="dependsOn", default=None)
    trigger_rule: Optional[TriggerRule] = Field(
        alias="triggerRule", default=TriggerRule.ALL_SUCCEEDED
    )
    retry_on_exit_codes: Optional[list[int]] = Field(
        alias="retryOnExitCodes", default=None
    )
    input_file_id: Optional[str] = Field(alias="inputFileId", default=None)
    executor: Optional[str] = None


class EnvVarInput(BaseModel):
    name: str
    value: str


class CreateWorkflowInput(BaseModel):
    name: Optional[str] = None
    steps: list["WorkflowStepInput"]


class WorkflowStepInput(BaseModel):
    name: str
    task: "CreateTaskInput"
    depends_on: Optional[list[str]] = Field(alias="dependsOn", default=None)


class CreateScheduleInput(BaseModel):
    name: Optional[str] = None
    cron: Optional[str] = None
    interval_seconds: Optional[int] = Field(alias="intervalSeconds", default=None)
    timezone: Optional[str] = "UTC"
    task: Optional["CreateTaskInput"] = None
    workflow: Optional["CreateWorkflowInput"] = None
    misfire_policy: Optional[MisfirePolicy] = Field(
        alias="misfirePolicy", default=MisfirePolicy.SKIP
    )
    overlap_policy: Optional[OverlapPolicy] = Field(
        alias="overlapPolicy", default=OverlapPolicy.ALLOW
    )


class NotificationRuleInput(BaseModel):
    event: NotificationEvent
    channels: list[NotificationChannel]


CreateTaskInput.model_rebuild()
CreateWorkflowInput.model_rebuild()
WorkflowStepInput.model_rebuild()
CreateScheduleInput.model_rebuild()
