from pydantic import Field

from .base_model import BaseModel


class DeleteAccount(BaseModel):
    delete_account: bool = Field(alias="deleteAccount")
