from typing import Optional

from .base_model import BaseModel
from .fragments import FileFields


class File(BaseModel):
    file: Optional["FileFile"]


FileFile = FileFields
File.model_rebuild()
