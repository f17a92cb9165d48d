from pydantic import Field

from .base_model import BaseModel
from .fragments import FileFields, PageFields


class Files(BaseModel):
    files: "FilesFiles"


class FilesFiles(BaseModel):
    edges: list["FilesFilesEdges"]
    page_info: "FilesFilesPageInfo" = Field(alias="pageInfo")
    total_count: int = Field(alias="totalCount")


class FilesFilesEdges(BaseModel):
    cursor: str
    node: "FilesFilesEdgesNode"


FilesFilesEdgesNode = FileFields
FilesFilesPageInfo = PageFields
Files.model_rebuild()
FilesFiles.model_rebuild()
FilesFilesEdges.model_rebuild()
