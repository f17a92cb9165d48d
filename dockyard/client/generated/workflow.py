from typing import Optional

from .base_model import BaseModel
from .fragments import WorkflowFields


class Workflow(BaseModel):
    workflow: Optional["WorkflowWorkflow"]


WorkflowWorkflow = WorkflowFields
Workflow.model_rebuild()
