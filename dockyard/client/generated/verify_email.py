from pydantic import Field

from .base_model import BaseModel
from .fragments import UserFields


class VerifyEmail(BaseModel):
    verify_email: "VerifyEmailVerifyEmail" = Field(alias="verifyEmail")


VerifyEmailVerifyEmail = UserFields
VerifyEmail.model_rebuild()
