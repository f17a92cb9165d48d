from pydantic import Field

from .base_model import BaseModel


class AuthProviders(BaseModel):
    auth_providers: list[str] = Field(alias="authProviders")
