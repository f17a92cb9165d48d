from pydantic import Field

from .base_model import BaseModel
from .fragments import NotificationFields, PageFields


class Notifications(BaseModel):
    notifications: "NotificationsNotifications"


class NotificationsNotifications(BaseModel):
    edges: list["NotificationsNotificationsEdges"]
    page_info: "NotificationsNotificationsPageInfo" = Field(alias="pageInfo")
    total_count: int = Field(alias="totalCount")


class NotificationsNotificationsEdges(BaseModel):
    cursor: str
    node: "NotificationsNotificationsEdgesNode"


NotificationsNotificationsEdgesNode = NotificationFields
NotificationsNotificationsPageInfo = PageFields
Notifications.model_rebuild()
NotificationsNotifications.model_rebuild()
NotificationsNotificationsEdges.model_rebuild()
