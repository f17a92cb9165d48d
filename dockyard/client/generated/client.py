from collections.abc import AsyncIterator
from typing import Any, Optional, Union

from .async_base_client import AsyncBaseClient
from .auth_providers import AuthProviders
from .base_model import UNSET, UnsetType, Upload
from .cancel_task import CancelTask, CancelTaskCancelTask
from .cancel_workflow import CancelWorkflow, CancelWorkflowCancelWorkflow
from .change_password import ChangePassword, ChangePasswordChangePassword
from .create_schedule import CreateSchedule, CreateScheduleCreateSchedule
from .create_task import CreateTask, CreateTaskCreateTask
from .create_webhook import CreateWebhook, CreateWebhookCreateWebhook
from .create_workflow import CreateWorkflow, CreateWorkflowCreateWorkflow
from .delete_account import DeleteAccount
from .delete_file import DeleteFile
from .delete_schedule import DeleteSchedule
from .delete_task import DeleteTask
from .delete_webhook import DeleteWebhook
from .enums import NotificationEvent, TaskStatus
from .file import File, FileFile
from .file_updated import FileUpdated, FileUpdatedFileUpdated
from .files import Files, FilesFiles
from .finish_oidc_login import FinishOidcLogin, FinishOidcLoginFinishOidcLogin
from .input_types import (
    CreateScheduleInput,
    CreateTaskInput,
    CreateWorkflowInput,
    NotificationRuleInput,
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
from .notifications import Notifications, NotificationsNotifications
from .pause_schedule import PauseSchedule, PauseSchedulePauseSchedule
from .refresh_token import RefreshToken, RefreshTokenRefreshToken
from .register import Register, RegisterRegister
from .request_email_verification import RequestEmailVerification
from .request_password_reset import RequestPasswordReset
from .reset_password import ResetPassword
from .resume_schedule import ResumeSchedule, ResumeScheduleResumeSchedule
from .schedule import Schedule, ScheduleSchedule
from .schedules import Schedules, SchedulesSchedules
from .start_oidc_login import StartOidcLogin, StartOidcLoginStartOidcLogin
from .task import Task, TaskTask
from .task_logs import TaskLogs, TaskLogsTaskLogs
from .task_updated import TaskUpdated, TaskUpdatedTaskUpdated
from .tasks import Tasks, TasksTasks
from .update_notification_settings import (
    UpdateNotificationSettings,
    UpdateNotificationSettingsUpdateNotificationSettings,
)
from .upload_file import UploadFile, UploadFileUploadFile
from .verify_email import VerifyEmail, VerifyEmailVerifyEmail
from .webhooks import Webhooks, WebhooksWebhooks
from .workflow import Workflow, WorkflowWorkflow
from .workflow_updated import WorkflowUpdated, WorkflowUpdatedWorkflowUpdated
from .workflows import Workflows, WorkflowsWorkflows


def gql(q: str) -> str:
    return q


class GeneratedClient(AsyncBaseClient):
    async def me(self, **kwargs: Any) -> MeMe:
        query = gql("""
            query Me {
              me {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query, operation_name="Me", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Me.model_validate(data).me

    async def file(self, id: str, **kwargs: Any) -> Optional[FileFile]:
        query = gql("""
            query File($id: ID!) {
              file(id: $id) {
                ...FileFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="File", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return File.model_validate(data).file

    async def files(
        self,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        search: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> FilesFiles:
        query = gql("""
            query Files($first: Int, $after: String, $search: String) {
              files(first: $first, after: $after, search: $search) {
                edges {
                  cursor
                  node {
                    ...FileFields
                  }
                }
                pageInfo {
                  ...PageFields
                }
                totalCount
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              endCursor
            }
            """)
        variables: dict[str, object] = {
            "first": first,
            "after": after,
            "search": search,
        }
        response = await self.execute(
            query=query, operation_name="Files", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Files.model_validate(data).files

    async def task(
        self, id: str, logs_tail: Union[Optional[int], UnsetType] = UNSET, **kwargs: Any
    ) -> Optional[TaskTask]:
        query = gql("""
            query Task($id: ID!, $logsTail: Int) {
              task(id: $id) {
                ...TaskFields
                logs(tail: $logsTail)
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }
            """)
        variables: dict[str, object] = {"id": id, "logsTail": logs_tail}
        response = await self.execute(
            query=query, operation_name="Task", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Task.model_validate(data).task

    async def tasks(
        self,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        status: Union[Optional[TaskStatus], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> TasksTasks:
        query = gql("""
            query Tasks($first: Int, $after: String, $status: TaskStatus) {
              tasks(first: $first, after: $after, status: $status) {
                edges {
                  cursor
                  node {
                    ...TaskFields
                  }
                }
                pageInfo {
                  ...PageFields
                }
                totalCount
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              endCursor
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }
            """)
        variables: dict[str, object] = {
            "first": first,
            "after": after,
            "status": status,
        }
        response = await self.execute(
            query=query, operation_name="Tasks", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Tasks.model_validate(data).tasks

    async def workflow(self, id: str, **kwargs: Any) -> Optional[WorkflowWorkflow]:
        query = gql("""
            query Workflow($id: ID!) {
              workflow(id: $id) {
                ...WorkflowFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }

            fragment WorkflowFields on Workflow {
              id
              name
              status
              failedStep
              createdAt
              finishedAt
              steps {
                name
                dependsOn
                task {
                  ...TaskFields
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="Workflow", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Workflow.model_validate(data).workflow

    async def workflows(
        self,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> WorkflowsWorkflows:
        query = gql("""
            query Workflows($first: Int, $after: String) {
              workflows(first: $first, after: $after) {
                edges {
                  cursor
                  node {
                    ...WorkflowFields
                  }
                }
                pageInfo {
                  ...PageFields
                }
                totalCount
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              endCursor
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }

            fragment WorkflowFields on Workflow {
              id
              name
              status
              failedStep
              createdAt
              finishedAt
              steps {
                name
                dependsOn
                task {
                  ...TaskFields
                }
              }
            }
            """)
        variables: dict[str, object] = {"first": first, "after": after}
        response = await self.execute(
            query=query, operation_name="Workflows", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Workflows.model_validate(data).workflows

    async def schedule(
        self,
        id: str,
        runs_first: Union[Optional[int], UnsetType] = UNSET,
        runs_after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> Optional[ScheduleSchedule]:
        query = gql("""
            query Schedule($id: ID!, $runsFirst: Int, $runsAfter: String) {
              schedule(id: $id) {
                ...ScheduleFields
                runs(first: $runsFirst, after: $runsAfter) {
                  edges {
                    cursor
                    node {
                      ...TaskFields
                    }
                  }
                  pageInfo {
                    ...PageFields
                  }
                  totalCount
                }
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              endCursor
            }

            fragment ScheduleFields on Schedule {
              id
              name
              cron
              intervalSeconds
              timezone
              paused
              misfirePolicy
              overlapPolicy
              createdAt
              nextRuns
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }
            """)
        variables: dict[str, object] = {
            "id": id,
            "runsFirst": runs_first,
            "runsAfter": runs_after,
        }
        response = await self.execute(
            query=query, operation_name="Schedule", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Schedule.model_validate(data).schedule

    async def schedules(
        self,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> SchedulesSchedules:
        query = gql("""
            query Schedules($first: Int, $after: String) {
              schedules(first: $first, after: $after) {
                edges {
                  cursor
                  node {
                    ...ScheduleFields
                  }
                }
                pageInfo {
                  ...PageFields
                }
                totalCount
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              endCursor
            }

            fragment ScheduleFields on Schedule {
              id
              name
              cron
              intervalSeconds
              timezone
              paused
              misfirePolicy
              overlapPolicy
              createdAt
              nextRuns
            }
            """)
        variables: dict[str, object] = {"first": first, "after": after}
        response = await self.execute(
            query=query, operation_name="Schedules", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Schedules.model_validate(data).schedules

    async def notification_settings(
        self, **kwargs: Any
    ) -> list[NotificationSettingsNotificationSettings]:
        query = gql("""
            query NotificationSettings {
              notificationSettings {
                ...NotificationRuleFields
              }
            }

            fragment NotificationRuleFields on NotificationRule {
              event
              channels
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query,
            operation_name="NotificationSettings",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return NotificationSettings.model_validate(data).notification_settings

    async def notifications(
        self,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> NotificationsNotifications:
        query = gql("""
            query Notifications($first: Int, $after: String) {
              notifications(first: $first, after: $after) {
                edges {
                  cursor
                  node {
                    ...NotificationFields
                  }
                }
                pageInfo {
                  ...PageFields
                }
                totalCount
              }
            }

            fragment NotificationFields on Notification {
              id
              event
              subject
              subjectId
              createdAt
              deliveries {
                channel
                status
                attempts
                lastError
                deliveredAt
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              endCursor
            }
            """)
        variables: dict[str, object] = {"first": first, "after": after}
        response = await self.execute(
            query=query, operation_name="Notifications", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Notifications.model_validate(data).notifications

    async def webhooks(self, **kwargs: Any) -> list[WebhooksWebhooks]:
        query = gql("""
            query Webhooks {
              webhooks {
                ...WebhookFields
              }
            }

            fragment WebhookFields on Webhook {
              id
              url
              events
              createdAt
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query, operation_name="Webhooks", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Webhooks.model_validate(data).webhooks

    async def auth_providers(self, **kwargs: Any) -> list[str]:
        query = gql("""
            query AuthProviders {
              authProviders
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query, operation_name="AuthProviders", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return AuthProviders.model_validate(data).auth_providers

    async def register(
        self, email: str, password: str, **kwargs: Any
    ) -> RegisterRegister:
        query = gql("""
            mutation Register($email: String!, $password: String!) {
              register(email: $email, password: $password) {
                ...AuthFields
              }
            }

            fragment AuthFields on AuthPayload {
              accessToken
              refreshToken
              expiresIn
              user {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {"email": email, "password": password}
        response = await self.execute(
            query=query, operation_name="Register", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Register.model_validate(data).register

    async def login(self, email: str, password: str, **kwargs: Any) -> LoginLogin:
        query = gql("""
            mutation Login($email: String!, $password: String!) {
              login(email: $email, password: $password) {
                ...AuthFields
              }
            }

            fragment AuthFields on AuthPayload {
              accessToken
              refreshToken
              expiresIn
              user {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {"email": email, "password": password}
        response = await self.execute(
            query=query, operation_name="Login", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Login.model_validate(data).login

    async def refresh_token(
        self, refresh_token: str, **kwargs: Any
    ) -> RefreshTokenRefreshToken:
        query = gql("""
            mutation RefreshToken($refreshToken: String!) {
              refreshToken(refreshToken: $refreshToken) {
                ...AuthFields
              }
            }

            fragment AuthFields on AuthPayload {
              accessToken
              refreshToken
              expiresIn
              user {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {"refreshToken": refresh_token}
        response = await self.execute(
            query=query, operation_name="RefreshToken", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RefreshToken.model_validate(data).refresh_token

    async def logout(self, **kwargs: Any) -> bool:
        query = gql("""
            mutation Logout {
              logout
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query, operation_name="Logout", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Logout.model_validate(data).logout

    async def logout_all(self, **kwargs: Any) -> bool:
        query = gql("""
            mutation LogoutAll {
              logoutAll
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query, operation_name="LogoutAll", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return LogoutAll.model_validate(data).logout_all

    async def change_password(
        self, current_password: str, new_password: str, **kwargs: Any
    ) -> ChangePasswordChangePassword:
        query = gql("""
            mutation ChangePassword($currentPassword: String!, $newPassword: String!) {
              changePassword(currentPassword: $currentPassword, newPassword: $newPassword) {
                ...AuthFields
              }
            }

            fragment AuthFields on AuthPayload {
              accessToken
              refreshToken
              expiresIn
              user {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {
            "currentPassword": current_password,
            "newPassword": new_password,
        }
        response = await self.execute(
            query=query, operation_name="ChangePassword", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ChangePassword.model_validate(data).change_password

    async def request_password_reset(self, email: str, **kwargs: Any) -> bool:
        query = gql("""
            mutation RequestPasswordReset($email: String!) {
              requestPasswordReset(email: $email)
            }
            """)
        variables: dict[str, object] = {"email": email}
        response = await self.execute(
            query=query,
            operation_name="RequestPasswordReset",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RequestPasswordReset.model_validate(data).request_password_reset

    async def reset_password(
        self, token: str, new_password: str, **kwargs: Any
    ) -> bool:
        query = gql("""
            mutation ResetPassword($token: String!, $newPassword: String!) {
              resetPassword(token: $token, newPassword: $newPassword)
            }
            """)
        variables: dict[str, object] = {"token": token, "newPassword": new_password}
        response = await self.execute(
            query=query, operation_name="ResetPassword", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ResetPassword.model_validate(data).reset_password

    async def request_email_verification(self, **kwargs: Any) -> bool:
        query = gql("""
            mutation RequestEmailVerification {
              requestEmailVerification
            }
            """)
        variables: dict[str, object] = {}
        response = await self.execute(
            query=query,
            operation_name="RequestEmailVerification",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RequestEmailVerification.model_validate(data).request_email_verification

    async def verify_email(self, token: str, **kwargs: Any) -> VerifyEmailVerifyEmail:
        query = gql("""
            mutation VerifyEmail($token: String!) {
              verifyEmail(token: $token) {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {"token": token}
        response = await self.execute(
            query=query, operation_name="VerifyEmail", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return VerifyEmail.model_validate(data).verify_email

    async def start_oidc_login(
        self, provider: str, redirect_uri: str, **kwargs: Any
    ) -> StartOidcLoginStartOidcLogin:
        query = gql("""
            mutation StartOidcLogin($provider: String!, $redirectUri: String!) {
              startOidcLogin(provider: $provider, redirectUri: $redirectUri) {
                authorizationUrl
                state
              }
            }
            """)
        variables: dict[str, object] = {
            "provider": provider,
            "redirectUri": redirect_uri,
        }
        response = await self.execute(
            query=query, operation_name="StartOidcLogin", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return StartOidcLogin.model_validate(data).start_oidc_login

    async def finish_oidc_login(
        self, provider: str, code: str, state: str, **kwargs: Any
    ) -> FinishOidcLoginFinishOidcLogin:
        query = gql("""
            mutation FinishOidcLogin($provider: String!, $code: String!, $state: String!) {
              finishOidcLogin(provider: $provider, code: $code, state: $state) {
                ...AuthFields
              }
            }

            fragment AuthFields on AuthPayload {
              accessToken
              refreshToken
              expiresIn
              user {
                ...UserFields
              }
            }

            fragment UserFields on User {
              id
              email
              emailVerified
              createdAt
            }
            """)
        variables: dict[str, object] = {
            "provider": provider,
            "code": code,
            "state": state,
        }
        response = await self.execute(
            query=query, operation_name="FinishOidcLogin", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return FinishOidcLogin.model_validate(data).finish_oidc_login

    async def delete_account(
        self, password: Union[Optional[str], UnsetType] = UNSET, **kwargs: Any
    ) -> bool:
        query = gql("""
            mutation DeleteAccount($password: String) {
              deleteAccount(password: $password)
            }
            """)
        variables: dict[str, object] = {"password": password}
        response = await self.execute(
            query=query, operation_name="DeleteAccount", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteAccount.model_validate(data).delete_account

    async def upload_file(self, file: Upload, **kwargs: Any) -> UploadFileUploadFile:
        query = gql("""
            mutation UploadFile($file: Upload!) {
              uploadFile(file: $file) {
                ...FileFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }
            """)
        variables: dict[str, object] = {"file": file}
        response = await self.execute(
            query=query, operation_name="UploadFile", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return UploadFile.model_validate(data).upload_file

    async def delete_file(self, id: str, **kwargs: Any) -> bool:
        query = gql("""
            mutation DeleteFile($id: ID!) {
              deleteFile(id: $id)
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="DeleteFile", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteFile.model_validate(data).delete_file

    async def create_task(
        self, input: CreateTaskInput, **kwargs: Any
    ) -> CreateTaskCreateTask:
        query = gql("""
            mutation CreateTask($input: CreateTaskInput!) {
              createTask(input: $input) {
                ...TaskFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="CreateTask", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateTask.model_validate(data).create_task

    async def cancel_task(self, id: str, **kwargs: Any) -> CancelTaskCancelTask:
        query = gql("""
            mutation CancelTask($id: ID!) {
              cancelTask(id: $id) {
                ...TaskFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="CancelTask", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CancelTask.model_validate(data).cancel_task

    async def delete_task(self, id: str, **kwargs: Any) -> bool:
        query = gql("""
            mutation DeleteTask($id: ID!) {
              deleteTask(id: $id)
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="DeleteTask", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteTask.model_validate(data).delete_task

    async def create_workflow(
        self, input: CreateWorkflowInput, **kwargs: Any
    ) -> CreateWorkflowCreateWorkflow:
        query = gql("""
            mutation CreateWorkflow($input: CreateWorkflowInput!) {
              createWorkflow(input: $input) {
                ...WorkflowFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }

            fragment WorkflowFields on Workflow {
              id
              name
              status
              failedStep
              createdAt
              finishedAt
              steps {
                name
                dependsOn
                task {
                  ...TaskFields
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="CreateWorkflow", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateWorkflow.model_validate(data).create_workflow

    async def cancel_workflow(
        self, id: str, **kwargs: Any
    ) -> CancelWorkflowCancelWorkflow:
        query = gql("""
            mutation CancelWorkflow($id: ID!) {
              cancelWorkflow(id: $id) {
                ...WorkflowFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }

            fragment WorkflowFields on Workflow {
              id
              name
              status
              failedStep
              createdAt
              finishedAt
              steps {
                name
                dependsOn
                task {
                  ...TaskFields
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="CancelWorkflow", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CancelWorkflow.model_validate(data).cancel_workflow

    async def create_schedule(
        self, input: CreateScheduleInput, **kwargs: Any
    ) -> CreateScheduleCreateSchedule:
        query = gql("""
            mutation CreateSchedule($input: CreateScheduleInput!) {
              createSchedule(input: $input) {
                ...ScheduleFields
              }
            }

            fragment ScheduleFields on Schedule {
              id
              name
              cron
              intervalSeconds
              timezone
              paused
              misfirePolicy
              overlapPolicy
              createdAt
              nextRuns
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="CreateSchedule", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateSchedule.model_validate(data).create_schedule

    async def pause_schedule(
        self, id: str, **kwargs: Any
    ) -> PauseSchedulePauseSchedule:
        query = gql("""
            mutation PauseSchedule($id: ID!) {
              pauseSchedule(id: $id) {
                ...ScheduleFields
              }
            }

            fragment ScheduleFields on Schedule {
              id
              name
              cron
              intervalSeconds
              timezone
              paused
              misfirePolicy
              overlapPolicy
              createdAt
              nextRuns
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="PauseSchedule", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return PauseSchedule.model_validate(data).pause_schedule

    async def resume_schedule(
        self, id: str, **kwargs: Any
    ) -> ResumeScheduleResumeSchedule:
        query = gql("""
            mutation ResumeSchedule($id: ID!) {
              resumeSchedule(id: $id) {
                ...ScheduleFields
              }
            }

            fragment ScheduleFields on Schedule {
              id
              name
              cron
              intervalSeconds
              timezone
              paused
              misfirePolicy
              overlapPolicy
              createdAt
              nextRuns
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="ResumeSchedule", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ResumeSchedule.model_validate(data).resume_schedule

    async def delete_schedule(self, id: str, **kwargs: Any) -> bool:
        query = gql("""
            mutation DeleteSchedule($id: ID!) {
              deleteSchedule(id: $id)
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="DeleteSchedule", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteSchedule.model_validate(data).delete_schedule

    async def update_notification_settings(
        self, rules: list[NotificationRuleInput], **kwargs: Any
    ) -> list[UpdateNotificationSettingsUpdateNotificationSettings]:
        query = gql("""
            mutation UpdateNotificationSettings($rules: [NotificationRuleInput!]!) {
              updateNotificationSettings(rules: $rules) {
                ...NotificationRuleFields
              }
            }

            fragment NotificationRuleFields on NotificationRule {
              event
              channels
            }
            """)
        variables: dict[str, object] = {"rules": rules}
        response = await self.execute(
            query=query,
            operation_name="UpdateNotificationSettings",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return UpdateNotificationSettings.model_validate(
            data
        ).update_notification_settings

    async def create_webhook(
        self, url: str, events: list[NotificationEvent], **kwargs: Any
    ) -> CreateWebhookCreateWebhook:
        query = gql("""
            mutation CreateWebhook($url: String!, $events: [NotificationEvent!]!) {
              createWebhook(url: $url, events: $events) {
                webhook {
                  ...WebhookFields
                }
                secret
              }
            }

            fragment WebhookFields on Webhook {
              id
              url
              events
              createdAt
            }
            """)
        variables: dict[str, object] = {"url": url, "events": events}
        response = await self.execute(
            query=query, operation_name="CreateWebhook", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return CreateWebhook.model_validate(data).create_webhook

    async def delete_webhook(self, id: str, **kwargs: Any) -> bool:
        query = gql("""
            mutation DeleteWebhook($id: ID!) {
              deleteWebhook(id: $id)
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="DeleteWebhook", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return DeleteWebhook.model_validate(data).delete_webhook

    async def task_updated(
        self, id: str, **kwargs: Any
    ) -> AsyncIterator[TaskUpdatedTaskUpdated]:
        query = gql("""
            subscription TaskUpdated($id: ID!) {
              taskUpdated(id: $id) {
                ...TaskFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        async for data in self.execute_ws(
            query=query, operation_name="TaskUpdated", variables=variables, **kwargs
        ):
            yield TaskUpdated.model_validate(data).task_updated

    async def task_logs(
        self, id: str, **kwargs: Any
    ) -> AsyncIterator[TaskLogsTaskLogs]:
        query = gql("""
            subscription TaskLogs($id: ID!) {
              taskLogs(id: $id) {
                taskId
                stream
                text
                at
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        async for data in self.execute_ws(
            query=query, operation_name="TaskLogs", variables=variables, **kwargs
        ):
            yield TaskLogs.model_validate(data).task_logs

    async def file_updated(
        self, id: str, **kwargs: Any
    ) -> AsyncIterator[FileUpdatedFileUpdated]:
        query = gql("""
            subscription FileUpdated($id: ID!) {
              fileUpdated(id: $id) {
                ...FileFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        async for data in self.execute_ws(
            query=query, operation_name="FileUpdated", variables=variables, **kwargs
        ):
            yield FileUpdated.model_validate(data).file_updated

    async def workflow_updated(
        self, id: str, **kwargs: Any
    ) -> AsyncIterator[WorkflowUpdatedWorkflowUpdated]:
        query = gql("""
            subscription WorkflowUpdated($id: ID!) {
              workflowUpdated(id: $id) {
                ...WorkflowFields
              }
            }

            fragment FileFields on File {
              id
              filename
              contentType
              size
              sha256
              status
              lineCount
              wordCount
              mimeType
              error
              createdAt
              processedAt
              downloadUrl
              producedBy {
                id
              }
            }

            fragment TaskFields on Task {
              id
              name
              image
              command
              status
              exitCode
              error
              attempts
              triggerRule
              executor
              createdAt
              startedAt
              finishedAt
              dependsOn {
                id
              }
              inputFile {
                id
              }
              outputFiles {
                ...FileFields
              }
              workflow {
                id
              }
              schedule {
                id
              }
            }

            fragment WorkflowFields on Workflow {
              id
              name
              status
              failedStep
              createdAt
              finishedAt
              steps {
                name
                dependsOn
                task {
                  ...TaskFields
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        async for data in self.execute_ws(
            query=query, operation_name="WorkflowUpdated", variables=variables, **kwargs
        ):
            yield WorkflowUpdated.model_validate(data).workflow_updated

    async def notification_received(
        self, **kwargs: Any
    ) -> AsyncIterator[NotificationReceivedNotificationReceived]:
        query = gql("""
            subscription NotificationReceived {
              notificationReceived {
                ...NotificationFields
              }
            }

            fragment NotificationFields on Notification {
              id
              event
              subject
              subjectId
              createdAt
              deliveries {
                channel
                status
                attempts
                lastError
                deliveredAt
              }
            }
            """)
        variables: dict[str, object] = {}
        async for data in self.execute_ws(
            query=query,
            operation_name="NotificationReceived",
            variables=variables,
            **kwargs,
        ):
            yield NotificationReceived.model_validate(data).notification_received
