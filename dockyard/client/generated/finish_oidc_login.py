from pydantic import Field

from .base_model import BaseModel
from .fragments import AuthFields


class FinishOidcLogin(BaseModel):
    finish_oidc_login: "FinishOidcLoginFinishOidcLogin" = Field(alias="finishOidcLogin")


FinishOidcLoginFinishOidcLogin = AuthFields
FinishOidcLogin.model_rebuild()
