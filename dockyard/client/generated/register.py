from .base_model import BaseModel
from .fragments import AuthFields


class Register(BaseModel):
    register: "RegisterRegister"


RegisterRegister = AuthFields
Register.model_rebuild()
