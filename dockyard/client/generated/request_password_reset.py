from pydantic import Field

from .base_model import BaseModel


class RequestPasswordReset(BaseModel):
    request_password_reset: bool = Field(alias="requestPasswordReset")
