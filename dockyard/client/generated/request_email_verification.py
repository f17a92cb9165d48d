from pydantic import Field

from .base_model import BaseModel


class RequestEmailVerification(BaseModel):
    request_email_verification: bool = Field(alias="requestEmailVerification")
