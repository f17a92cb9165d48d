from pydantic import Field

from .base_model import BaseModel


class LogoutAll(BaseModel):
    logout_all: bool = Field(alias="logoutAll")
