from pydantic import Field

from .base_model import BaseModel
from .fragments import WorkflowFields


class CreateWorkflow(BaseModel):
    create_workflow: "CreateWorkflowCreateWorkflow" = Field(alias="createWorkflow")


CreateWorkflowCreateWorkflow = WorkflowFields
CreateWorkflow.model_rebuild()
