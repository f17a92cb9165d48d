from .base_model import BaseModel
from .fragments import AuthFields


class Login(BaseModel):
    login: "LoginLogin"


LoginLogin = AuthFields
Login.model_rebuild()
