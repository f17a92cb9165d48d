from pydantic import Field

from .base_model import BaseModel
from .fragments import WorkflowFields


class CancelWorkflow(BaseModel):
    cancel_workflow: "CancelWorkflowCancelWorkflow" = Field(alias="cancelWorkflow")


CancelWorkflowCancelWorkflow = WorkflowFields
CancelWorkflow.model_rebuild()
