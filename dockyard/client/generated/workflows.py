from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields, WorkflowFields


class Workflows(BaseModel):
    workflows: "WorkflowsWorkflows"


class WorkflowsWorkflows(BaseModel):
    edges: list["WorkflowsWorkflowsEdges"]
    page_info: "WorkflowsWorkflowsPageInfo" = Field(alias="pageInfo")
    total_count: int = Field(alias="totalCount")


class WorkflowsWorkflowsEdges(BaseModel):
    cursor: str
    node: "WorkflowsWorkflowsEdgesNode"


WorkflowsWorkflowsEdgesNode = WorkflowFields
WorkflowsWorkflowsPageInfo = PageFields
Workflows.model_rebuild()
WorkflowsWorkflows.model_rebuild()
WorkflowsWorkflowsEdges.model_rebuild()
