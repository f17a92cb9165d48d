"""Abuse limits applied before execution: token count, depth, top-level fields and cost."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from ariadne.validation import cost_validator
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import (
    ASTValidationRule,
    ValidationContext,
    ValidationRule,
)

from services.gateway.config import GatewaySettings

#: Estimated cost per field where it differs from the default of 1. Connection fields are
#: multiplied by `first`, and so is everything under them that this map names.
COST_MAP: dict[str, dict[str, dict[str, Any]]] = {
    "Query": {
        "files": {"complexity": 1, "multipliers": ["first"]},
        "tasks": {"complexity": 1, "multipliers": ["first"]},
    },
    "Mutation": {
        # Password hashing: each attempt costs the auth service real CPU.
        "register": {"complexity": 20},
        "login": {"complexity": 20},
        # Checks the current password and hashes the new one.
        "changePassword": {"complexity": 40},
        # Checks the password, then starts a saga across every service.
        "deleteAccount": {"complexity": 40},
        "resetPassword": {"complexity": 20},
        # Each may send a mail; auth limits them per address and per email or user too.
        "requestPasswordReset": {"complexity": 10},
        "requestEmailVerification": {"complexity": 10},
        "uploadFile": {"complexity": 20},
        "createTask": {"complexity": 10},
    },
    "FileConnection": {"edges": {"complexity": 1}},
    "FileEdge": {"node": {"complexity": 1}},
    "TaskConnection": {"edges": {"complexity": 1}},
    "TaskEdge": {"node": {"complexity": 1}},
    "Task": {
        # A call to the tasks service per task, answering up to TASKS_LOG_MAX_BYTES per stream:
        # at the default cost limit a page of 20 tasks with their logs passes, 40 do not.
        "logs": {"complexity": 25},
        # A call to the tasks service per dependency.
        "dependsOn": {"complexity": 5},
        "inputFile": {"complexity": 2},
        # A call to the tasks service per task, answering the workflow with every step.
        "workflow": {"complexity": 5},
    },
}


class _SelectionWalker(ValidationRule):
    """A validation rule that measures selections, expanding each fragment once."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self._fragment_cache: dict[tuple[str, str], int] = {}

    def _fragment(self, node: FragmentSpreadNode, measure: str, stack: frozenset[str]) -> int:
        name = node.name.value
        if name in stack:
            return 0  # a fragment cycle; NoFragmentCyclesRule reports it
        key = (measure, name)
        if key not in self._fragment_cache:
            fragment = self.context.get_fragment(name)
            self._fragment_cache[key] = (
                getattr(self, measure)(fragment.selection_set, stack | {name}) if fragment else 0
            )
        return self._fragment_cache[key]


def depth_limit_rule(max_depth: int) -> type[ASTValidationRule]:
    """A rule refusing operations that nest fields deeper than `max_depth`."""

    class DepthLimitRule(_SelectionWalker):
        """Refuse operations whose field nesting exceeds the configured depth."""

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args) -> None:
            """Measure the operation and report it when too deep."""
            depth = self.depth(node.selection_set, frozenset())
            if depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"The operation is nested {depth} levels deep; the limit is {max_depth}.",
                        node,
                        extensions={"depth": {"requested": depth, "maximum": max_depth}},
                    )
                )

        def depth(self, selection_set: SelectionSetNode | None, stack: frozenset[str]) -> int:
            """Levels of fields below `selection_set`."""
            deepest = 0
            for selection in selection_set.selections if selection_set else ():
                if isinstance(selection, FieldNode):
                    if selection.name.value.startswith("__"):
                        continue  # introspection has its own switch; GraphiQL nests it deeply
                    deepest = max(deepest, 1 + self.depth(selection.selection_set, stack))
                elif isinstance(selection, InlineFragmentNode):
                    deepest = max(deepest, self.depth(selection.selection_set, stack))
                elif isinstance(selection, FragmentSpreadNode):
                    deepest = max(deepest, self._fragment(selection, "depth", stack))
            return deepest

    return DepthLimitRule


def root_field_limit_rule(max_fields: int) -> type[ASTValidationRule]:
    """A rule refusing operations with more than `max_fields` top-level fields (aliases too)."""

    class RootFieldLimitRule(_SelectionWalker):
        """Refuse operations selecting too many top-level fields, counting every alias."""

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args) -> None:
            """Count the operation's top-level fields and report it when too many."""
            count = self.fields(node.selection_set, frozenset())
            if count > max_fields:
                self.report_error(
                    GraphQLError(
                        f"The operation selects {count} top-level fields (each alias counts); "
                        f"the limit is {max_fields}.",
                        node,
                        extensions={"rootFields": {"requested": count, "maximum": max_fields}},
                    )
                )

        def fields(self, selection_set: SelectionSetNode | None, stack: frozenset[str]) -> int:
            """Fields selected at this level, through fragments."""
            count = 0
            for selection in selection_set.selections if selection_set else ():
                if isinstance(selection, FieldNode):
                    count += 1
                elif isinstance(selection, InlineFragmentNode):
                    count += self.fields(selection.selection_set, stack)
                elif isinstance(selection, FragmentSpreadNode):
                    count += self._fragment(selection, "fields", stack)
            return count

    return RootFieldLimitRule


class _CostContext:
    """The validation context as the cost rule sees it: its argument errors are dropped.

    The cost rule re-reports every argument it cannot coerce (wrapped, so with an original
    error) although the spec's rules already report each one; clients would see it twice.
    """

    def __init__(self, context: ValidationContext) -> None:
        self._context = context

    def report_error(self, error: GraphQLError) -> None:
        """Pass on the rule's own findings (cost exceeded), not its duplicates."""
        if error.original_error is None:
            self._context.report_error(error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def cost_limit_rule(maximum_cost: int, variables: dict | None) -> type[ASTValidationRule]:
    """Ariadne's cost validator (1 per field, COST_MAP weights), safe on fragment cycles."""
    base = cost_validator(maximum_cost, default_cost=1, variables=variables, cost_map=COST_MAP)

    class CostLimitRule(base):  # type: ignore[misc, valid-type]
        """Refuse operations whose estimated cost exceeds the limit."""

        #: Whether its verdict may differ between two requests of one document.
        depends_on_variables = variables is not None

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.context = _CostContext(context)  # type: ignore[assignment]
            self._expanding: set[str] = set()

        def get_fragment_cost_coefficients(self, fragment, fragment_type):
            """Cost a fragment once; a fragment within itself counts 0.

            Ariadne 1.1.1 recurses without end on a fragment cycle until graphql-core aborts
            validation with a bare "Validation aborted."; NoFragmentCyclesRule reports the
            cycle properly once this rule stops recursing.
            """
            name = fragment.name.value
            if name in self._expanding:
                return (0, 0)
            self._expanding.add(name)
            try:
                return super().get_fragment_cost_coefficients(fragment, fragment_type)
            finally:
                self._expanding.discard(name)

    return CostLimitRule


ValidationRulesFactory = Callable[[Any, DocumentNode, Any], Collection[type[ASTValidationRule]]]


def validation_rules(settings: GatewaySettings) -> ValidationRulesFactory:
    """Ariadne `validation_rules`: depth, top-level field and cost limits for one request."""
    depth = depth_limit_rule(settings.GRAPHQL_MAX_DEPTH)
    root_fields = root_field_limit_rule(settings.GRAPHQL_MAX_ROOT_FIELDS)
    # Most documents declare no variables: their cost is the same on every request, so one rule
    # serves them all and its verdict is cached with the document's.
    fixed_cost = cost_limit_rule(settings.GRAPHQL_MAX_COST, None)

    def rules(_context: Any, document: DocumentNode, data: Any) -> list[type[ASTValidationRule]]:
        if not _declares_variables(document):
            return [depth, root_fields, fixed_cost]
        variables = data.get("variables") if isinstance(data, dict) else None
        return [depth, root_fields, cost_limit_rule(settings.GRAPHQL_MAX_COST, variables or {})]

    return rules


def _declares_variables(document: DocumentNode) -> bool:
    return any(
        isinstance(definition, OperationDefinitionNode) and definition.variable_definitions
        for definition in document.definitions
    )
