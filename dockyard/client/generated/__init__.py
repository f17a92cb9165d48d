from .async_base_client import AsyncBaseClient
from .auth_providers import AuthProviders
from .base_model import BaseModel, Upload
from .cancel_task import CancelTask, CancelTaskCancelTask
from .cancel_workflow import CancelWorkflow, CancelWorkflowCancelWorkflow
from .change_password import ChangePassword, ChangePasswordChangePassword
from .client import GeneratedClient
from .create_schedule import CreateSchedule, CreateScheduleCreateSchedule
from .create_task import CreateTask, CreateTaskCreateTask
from .create_webhook import (
    CreateWebhook,
    CreateWebhookCreateWebhook,
    CreateWebhookCreateWebhookWebhook,
)
from .create_workflow import CreateWorkflow, CreateWorkflowCreateWorkflow
from .delete_account import DeleteAccount
from .delete_file import DeleteFile
from .delete_schedule import DeleteSchedule
from .delete_task import DeleteTask
from .delete_webhook import DeleteWebhook
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
from .exceptions import (
    GraphQLClientError,
    GraphQLClientGraphQLError,
    GraphQLClientGraphQLMultiError,
    GraphQLClientHttpError,
    GraphQLClientInvalidResponseError,
)
from .file import File, FileFile
from .file_updated import FileUpdated, FileUpdatedFileUpdated
from .files import (
    Files,
    FilesFiles,
    FilesFilesEdges,
    FilesFilesEdgesNode,
    FilesFilesPageInfo,
)
from .finish_oidc_login import FinishOidcLogin, FinishOidcLoginFinishOidcLogin
from .fragments import (
    AuthFields,
    AuthFieldsUser,
    FileFields,
    FileFieldsProducedBy,
    NotificationFields,
    NotificationFieldsDeliveries,
    NotificationRuleFields,
    PageFields,
    ScheduleFields,
    TaskFields,
    TaskFieldsDependsOn,
    TaskFieldsInputFile,
    TaskFieldsOutputFiles,
    TaskFieldsSchedule,
    TaskFieldsWorkflow,
    UserFields,
    WebhookFields,
    WorkflowFields,
    WorkflowFieldsSteps,
    WorkflowFieldsStepsTask,
)
from .input_types import (
    CreateScheduleInput,
    CreateTaskInput,
    CreateWorkflowInput,
    EnvVarInput,
    NotificationRuleInput,
    WorkflowStepInput,
)
from .login import Login, LoginLogin
from .logout import Logout
from .logout_all import LogoutAll
from .me import Me, MeMe
from .notification_received import (
    NotificationReceived,
    NotificationReceivedNotificationReceived,
)
from .notification_settings import (
    NotificationSettings,
    NotificationSettingsNotificationSettings,
)
from .notifications import (
    Notifications,
    NotificationsNotifications,
    NotificationsNotificationsEdges,
    NotificationsNotificationsEdgesNode,
    NotificationsNotificationsPageInfo,
)
from .pause_schedule import PauseSchedule, PauseSchedulePauseSchedule
from .refresh_token import RefreshToken, RefreshTokenRefreshToken
from .register import Register, RegisterRegister
from .request_email_verification import RequestEmailVerification
from .request_password_reset import RequestPasswordReset
from .reset_password import ResetPassword
from .resume_schedule import ResumeSchedule, ResumeScheduleResumeSchedule
from .schedule import (
    Schedule,
    ScheduleSchedule,
    ScheduleScheduleRuns,
    ScheduleScheduleRunsEdges,
    ScheduleScheduleRunsEdgesNode,
    ScheduleScheduleRunsPageInfo,
)
from .schedules import (
    Schedules,
    SchedulesSchedules,
    SchedulesSchedulesEdges,
    SchedulesSchedulesEdgesNode,
    SchedulesSchedulesPageInfo,
)
from .start_oidc_login import StartOidcLogin, StartOidcLoginStartOidcLogin
from .task import Task, TaskTask
from .task_logs import TaskLogs, TaskLogsTaskLogs
from .task_updated import TaskUpdated, TaskUpdatedTaskUpdated
from .tasks import (
    Tasks,
    TasksTasks,
    TasksTasksEdges,
    TasksTasksEdgesNode,
    TasksTasksPageInfo,
)
from .update_notification_settings import (
    UpdateNotificationSettings,
    UpdateNotificationSettingsUpdateNotificationSettings,
)
from .upload_file import UploadFile, UploadFileUploadFile
from .verify_email import VerifyEmail, VerifyEmailVerifyEmail
from .webhooks import Webhooks, WebhooksWebhooks
from .workflow import Workflow, WorkflowWorkflow
from .workflow_updated import WorkflowUpdated, WorkflowUpdatedWorkflowUpdated
from .workflows import (
    Workflows,
    WorkflowsWorkflows,
    WorkflowsWorkflowsEdges,
    WorkflowsWorkflowsEdgesNode,
    WorkflowsWorkflowsPageInfo,
)

__all__ = [
    "AsyncBaseClient",
    "AuthFields",
    "AuthFieldsUser",
    "AuthProviders",
    "BaseModel",
    "CancelTask",
    "CancelTaskCancelTask",
    "CancelWorkflow",
    "CancelWorkflowCancelWorkflow",
    "ChangePassword",
    "ChangePasswordChangePassword",
    "CreateSchedule",
    "CreateScheduleCreateSchedule",
    "CreateScheduleInput",
    "CreateTask",
    "CreateTaskCreateTask",
    "CreateTaskInput",
    "CreateWebhook",
    "CreateWebhookCreateWebhook",
    "CreateWebhookCreateWebhookWebhook",
    "CreateWorkflow",
    "CreateWorkflowCreateWorkflow",
    "CreateWorkflowInput",
    "DeleteAccount",
    "DeleteFile",
    "DeleteSchedule",
    "DeleteTask",
    "DeleteWebhook",
    "EnvVarInput",
    "File",
    "FileFields",
    "FileFieldsProducedBy",
    "FileFile",
    "FileStatus",
    "FileUpdated",
    "FileUpdatedFileUpdated",
    "Files",
    "FilesFiles",
    "FilesFilesEdges",
    "FilesFilesEdgesNode",
    "FilesFilesPageInfo",
    "FinishOidcLogin",
    "FinishOidcLoginFinishOidcLogin",
    "GeneratedClient",
    "GraphQLClientError",
    "GraphQLClientGraphQLError",
    "GraphQLClientGraphQLMultiError",
    "GraphQLClientHttpError",
    "GraphQLClientInvalidResponseError",
    "Login",
    "LoginLogin",
    "Logout",
    "LogoutAll",
    "Me",
    "MeMe",
    "MisfirePolicy",
    "NotificationChannel",
    "NotificationEvent",
    "NotificationFields",
    "NotificationFieldsDeliveries",
    "NotificationReceived",
    "NotificationReceivedNotificationReceived",
    "NotificationRuleFields",
    "NotificationRuleInput",
    "NotificationSettings",
    "NotificationSettingsNotificationSettings",
    "Notifications",
    "NotificationsNotifications",
    "NotificationsNotificationsEdges",
    "NotificationsNotificationsEdgesNode",
    "NotificationsNotificationsPageInfo",
    "OverlapPolicy",
    "PageFields",
    "PauseSchedule",
    "PauseSchedulePauseSchedule",
    "RefreshToken",
    "RefreshTokenRefreshToken",
    "Register",
    "RegisterRegister",
    "RequestEmailVerification",
    "RequestPasswordReset",
    "ResetPassword",
    "ResumeSchedule",
    "ResumeScheduleResumeSchedule",
    "Schedule",
    "ScheduleFields",
    "ScheduleSchedule",
    "ScheduleScheduleRuns",
    "ScheduleScheduleRunsEdges",
    "ScheduleScheduleRunsEdgesNode",
    "ScheduleScheduleRunsPageInfo",
    "Schedules",
    "SchedulesSchedules",
    "SchedulesSchedulesEdges",
    "SchedulesSchedulesEdgesNode",
    "SchedulesSchedulesPageInfo",
    "StartOidcLogin",
    "StartOidcLoginStartOidcLogin",
    "Task",
    "TaskFields",
    "TaskFieldsDependsOn",
    "TaskFieldsInputFile",
    "TaskFieldsOutputFiles",
    "TaskFieldsSchedule",
    "TaskFieldsWorkflow",
    "TaskLogs",
    "TaskLogsTaskLogs",
    "TaskStatus",
    "TaskTask",
    "TaskUpdated",
    "TaskUpdatedTaskUpdated",
    "Tasks",
    "TasksTasks",
    "TasksTasksEdges",
    "TasksTasksEdgesNode",
    "TasksTasksPageInfo",
    "TriggerRule",
    "UpdateNotificationSettings",
    "UpdateNotificationSettingsUpdateNotificationSettings",
    "Upload",
    "UploadFile",
    "UploadFileUploadFile",
    "UserFields",
    "VerifyEmail",
    "VerifyEmailVerifyEmail",
    "WebhookFields",
    "Webhooks",
    "WebhooksWebhooks",
    "Workflow",
    "WorkflowFields",
    "WorkflowFieldsSteps",
    "WorkflowFieldsStepsTask",
    "WorkflowStatus",
    "WorkflowStepInput",
    "WorkflowUpdated",
    "WorkflowUpdatedWorkflowUpdated",
    "WorkflowWorkflow",
    "Workflows",
    "WorkflowsWorkflows",
    "WorkflowsWorkflowsEdges",
    "WorkflowsWorkflowsEdgesNode",
    "WorkflowsWorkflowsPageInfo",
]
