from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    FileStatus,
    MisfirePolicy,
    NotificationChannel,
    NotificationEvent,
    OverlapPolicy,
    TaskStatus,
    TriggerRule,
    WorkflowStatus,
)


class UserFields(BaseModel):
    id: str
    email: str
    email_verified: bool = Field(alias="emailVerified")
    created_at: datetime = Field(alias="createdAt")


class AuthFields(BaseModel):
    access_token: str = Field(alias="accessToken")
    refresh_token: str = Field(alias="refreshToken")
    expires_in: int = Field(alias="expiresIn")
    user: "AuthFieldsUser"


class AuthFieldsUser(UserFields):
    pass


class FileFields(BaseModel):
    id: str
    filename: str
    content_type: Optional[str] = Field(alias="contentType")
    size: int
    sha_256: Optional[str] = Field(alias="sha256")
    status: FileStatus
    line_count: Optional[int] = Field(alias="lineCount")
    word_count: Optional[int] = Field(alias="wordCount")
    mime_type: Optional[str] = Field(alias="mimeType")
    error: Optional[str]
    created_at: datetime = Field(alias="createdAt")
    processed_at: Optional[datetime] = Field(alias="processedAt")
    download_url: Optional[str] = Field(alias="downloadUrl")
    produced_by: Optional["FileFieldsProducedBy"] = Field(alias="producedBy")


class FileFieldsProducedBy(BaseModel):
    id: str


class NotificationFields(BaseModel):
    id: str
    event: NotificationEvent
    subject: str
    subject_id: str = Field(alias="subjectId")
    created_at: datetime = Field(alias="createdAt")
    deliveries: list["NotificationFieldsDeliveries"]


class NotificationFieldsDeliveries(BaseModel):
    channel: NotificationChannel
    status: str
    attempts: int
    last_error: Optional[str] = Field(alias="lastError")
    delivered_at: Optional[datetime] = Field(alias="deliveredAt")


class NotificationRuleFields(BaseModel):
    event: NotificationEvent
    channels: list[NotificationChannel]


class PageFields(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: Optional[str] = Field(alias="endCursor")


class ScheduleFields(BaseModel):
    id: str
    name: Optional[str]
    cron: Optional[str]
    interval_seconds: Optional[int] = Field(alias="intervalSeconds")
    timezone: str
    paused: bool
    misfire_policy: MisfirePolicy = Field(alias="misfirePolicy")
    overlap_policy: OverlapPolicy = Field(alias="overlapPolicy")
    created_at: datetime = Field(alias="createdAt")
    next_runs: list[datetime] = Field(alias="nextRuns")


class TaskFields(BaseModel):
    id: str
    name: Optional[str]
    image: str
    command: list[str]
    status: TaskStatus
    exit_code: Optional[int] = Field(alias="exitCode")
    error: Optional[str]
    attempts: int
    trigger_rule: TriggerRule = Field(alias="triggerRule")
    executor: str
    created_at: datetime = Field(alias="createdAt")
    started_at: Optional[datetime] = Field(alias="startedAt")
    finished_at: Optional[datetime] = Field(alias="finishedAt")
    depends_on: list["TaskFieldsDependsOn"] = Field(alias="dependsOn")
    input_file: Optional["TaskFieldsInputFile"] = Field(alias="inputFile")
    output_files: list["TaskFieldsOutputFiles"] = Field(alias="outputFiles")
    workflow: Optional["TaskFieldsWorkflow"]
    schedule: Optional["TaskFieldsSchedule"]


class TaskFieldsDependsOn(BaseModel):
    id: str


class TaskFieldsInputFile(BaseModel):
    id: str


class TaskFieldsOutputFiles(FileFields):
    pass


class TaskFieldsWorkflow(BaseModel):
    id: str


class TaskFieldsSchedule(BaseModel):
    id: str


class WebhookFields(BaseModel):
    id: str
    url: str
    events: list[NotificationEvent]
    created_at: datetime = Field(alias="createdAt")


class WorkflowFields(BaseModel):
    id: str
    name: Optional[str]
    status: WorkflowStatus
    failed_step: Optional[str] = Field(alias="failedStep")
    created_at: datetime = Field(alias="createdAt")
    finished_at: Optional[datetime] = Field(alias="finishedAt")
    steps: list["WorkflowFieldsSteps"]


class WorkflowFieldsSteps(BaseModel):
    name: str
    depends_on: list[str] = Field(alias="dependsOn")
    task: "WorkflowFieldsStepsTask"


class WorkflowFieldsStepsTask(TaskFields):
    pass


UserFields.model_rebuild()
AuthFields.model_rebuild()
FileFields.model_rebuild()
NotificationFields.model_rebuild()
NotificationRuleFields.model_rebuild()
PageFields.model_rebuild()
ScheduleFields.model_rebuild()
TaskFields.model_rebuild()
WebhookFields.model_rebuild()
WorkflowFields.model_rebuild()
