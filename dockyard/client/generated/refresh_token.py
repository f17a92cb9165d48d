from pydantic import Field

from .base_model import BaseModel
from .fragments import AuthFields


class RefreshToken(BaseModel):
    refresh_token: "RefreshTokenRefreshToken" = Field(alias="refreshToken")


RefreshTokenRefreshToken = AuthFields
RefreshToken.model_rebuild()
