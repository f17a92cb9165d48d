from pydantic import Field

from .base_model import BaseModel
from .fragments import NotificationRuleFields


class NotificationSettings(BaseModel):
    notification_settings: list["NotificationSettingsNotificationSettings"] = Field(
        alias="notificationSettings"
    )


NotificationSettingsNotificationSettings = NotificationRuleFields
NotificationSettings.model_rebuild()
