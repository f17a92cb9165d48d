from pydantic import Field

from .base_model import BaseModel
from .fragments import FileFields


class FileUpdated(BaseModel):
    file_updated: "FileUpdatedFileUpdated" = Field(alias="fileUpdated")


FileUpdatedFileUpdated = FileFields
FileUpdated.model_rebuild()
