from pydantic import Field

from .base_model import BaseModel
from .fragments import AuthFields


class ChangePassword(BaseModel):
    change_password: "ChangePasswordChangePassword" = Field(alias="changePassword")


ChangePasswordChangePassword = AuthFields
ChangePassword.model_rebuild()
