from pydantic import Field

from .base_model import BaseModel


class DeleteFile(BaseModel):
    delete_file: bool = Field(alias="deleteFile")
