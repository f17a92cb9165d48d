from .base_model import BaseModel
from .fragments import UserFields


class Me(BaseModel):
    me: "MeMe"


MeMe = UserFields
Me.model_rebuild()
