from pydantic import Field

from .base_model import BaseModel
from .fragments import NotificationRuleFields


class UpdateNotificationSettings(BaseModel):
    update_notification_settings: list[
        "UpdateNotificationSettingsUpdateNotificationSettings"
    ] = Field(alias="updateNotificationSettings")


UpdateNotificationSettingsUpdateNotificationSettings = NotificationRuleFields
UpdateNotificationSettings.model_rebuild()
