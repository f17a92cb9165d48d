from pydantic import Field

from .base_model import BaseModel


class StartOidcLogin(BaseModel):
    start_oidc_login: "StartOidcLoginStartOidcLogin" = Field(alias="startOidcLogin")


class StartOidcLoginStartOidcLogin(BaseModel):
    authorization_url: str = Field(alias="authorizationUrl")
    state: str


StartOidcLogin.model_rebuild()
