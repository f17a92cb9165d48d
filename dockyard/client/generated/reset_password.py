from pydantic import Field

from .base_model import BaseModel


class ResetPassword(BaseModel):
    reset_password: bool = Field(alias="resetPassword")
