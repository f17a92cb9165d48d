from pydantic import Field

from .base_model import BaseModel
from .fragments import FileFields


class UploadFile(BaseModel):
    upload_file: "UploadFileUploadFile" = Field(alias="uploadFile")


UploadFileUploadFile = FileFields
UploadFile.model_rebuild()
