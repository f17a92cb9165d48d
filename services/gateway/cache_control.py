"""Apollo-style cache hints: `@cacheControl` in the schema, a cache policy per query document.

The rules are Apollo Server's: a field's hint is its return type's `@cacheControl` overridden
by the field's own; a root field or a field returning an object that ends up without maxAge
gets maxAge 0 (uncacheable) unless it says `inheritMaxAge: true`; a scalar field without one
inherits its parent's. An operation's policy is the smallest maxAge of its fields, PRIVATE if
any field is. The hints depend only on the document and the schema, so a policy is worked out
once per cached document; fields a variable may skip count too, which can only lower it.

Responses carry Apollo's `extensions.cacheControl` (`{"version": 1, "hints": [...]}`, one hint
per field whose hint the schema states; defaulted maxAge 0 is left out as noise) and a
`Cache-Control` header: `private, max-age=N` for a cacheable query (every answer is some
user's), `no-store` for mutations, errors and anything uncacheable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    is_composite_type,
)

NO_STORE = "no-store"
PRIVATE, PUBLIC = "PRIVATE", "PUBLIC"
DIRECTIVE = "cacheControl"


@dataclass(frozen=True)
class Hint:
    """One `@cacheControl`: what it sets (None: not set)."""

    max_age: int | None = None
    scope: str | None = None
    inherit_max_age: bool = False

    def over(self, other: Hint) -> Hint:
        """This hint where it sets something, `other` elsewhere."""
        return Hint(
            self.max_age if self.max_age is not None else other.max_age,
            self.scope or other.scope,
            self.inherit_max_age or other.inherit_max_age,
        )


def _directive_hint(nodes: list[Any]) -> Hint:
    hint = Hint()
    for node in nodes:
        for directive in getattr(node, "directives", None) or ():
            if directive.name.value != DIRECTIVE:
                continue
            values = {argument.name.value: argument.value for argument in directive.arguments}
            max_age = values.get("maxAge")
            scope = values.get("scope")
            inherit = values.get("inheritMaxAge")
            hint = Hint(
                int(max_age.value) if isinstance(max_age, IntValueNode) else None,
                scope.value if isinstance(scope, EnumValueNode) else None,
                isinstance(inherit, BooleanValueNode) and inherit.value,
            ).over(hint)
    return hint


def _nodes(named: GraphQLNamedType) -> list[Any]:
    return [named.ast_node, *(getattr(named, "extension_ast_nodes", None) or ())]


class CacheHints:
    """Every field's effective hint, read once from the schema's directives."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        roots = {schema.query_type, schema.mutation_type, schema.subscription_type}
        self._fields: dict[tuple[str, str], Hint] = {}
        self._stated: set[tuple[str, str]] = set()
        for named in schema.type_map.values():
            if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                continue
            if named.name.startswith("__"):
                continue
            for name, definition in named.fields.items():
                target = get_named_type(definition.type)
                composite = is_composite_type(target)
                hint = _directive_hint([definition.ast_node])
                if composite:
                    hint = hint.over(_directive_hint(_nodes(target)))
                stated = hint.max_age is not None or hint.scope is not None
                if hint.max_age is None and (composite or named in roots):
                    if not hint.inherit_max_age:
                        hint = Hint(0, hint.scope)
                self._fields[(named.name, name)] = hint
                if stated:
                    self._stated.add((named.name, name))

    def of(self, type_name: str, field_name: str) -> Hint:
        """The hint a field of that type resolves with."""
        return self._fields.get((type_name, field_name), Hint())

    def stated(self, type_name: str, field_name: str) -> bool:
        """Whether the schema states the field's hint (on it or its type), not a default."""
        return (type_name, field_name) in self._stated


#: Response key -> (the field's hint when it has one, the plan of its selection).
Plan = dict[str, tuple[Hint | None, "Plan"]]


@dataclass
class Policy:
    """What one query document allows: its smallest maxAge, and where each hint applies."""

    max_age: int | None = None
    private: bool = False
    plan: Plan = field(default_factory=dict)

    def restrict(self, hint: Hint) -> None:
        """Fold one field's hint in."""
        if hint.max_age is not None:
            self.max_age = hint.max_age if self.max_age is None else min(self.max_age, hint.max_age)
        if hint.scope == PRIVATE:
            self.private = True

    @property
    def cacheable(self) -> bool:
        """Whether a response may be kept at all."""
        return bool(self.max_age)

    def header(self) -> str:
        """The Cache-Control value of an error-free response.

        Always private: every answer is for the user whose token came with the request.
        """
        return f"private, max-age={self.max_age}" if self.cacheable else NO_STORE

    def hints(self, data: Any) -> list[dict[str, Any]]:
        """Apollo's `hints`: each hinted field present in `data`, by its path."""
        found: list[dict[str, Any]] = []
        _collect(data, self.plan, [], found)
        return found


def _collect(value: Any, plan: Plan, path: list[Any], found: list[dict[str, Any]]) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _collect(item, plan, [*path, index], found)
        return
    if not isinstance(value, dict):
        return
    for key, (hint, child) in plan.items():
        if key not in value:
            continue
        where = [*path, key]
        if hint is not None:
            entry: dict[str, Any] = {"path": where, "maxAge": hint.max_age}
            if hint.scope == PRIVATE:
                entry["scope"] = PRIVATE
            found.append(entry)
        if child:
            _collect(value[key], child, where, found)


def query_policy(
    hints: CacheHints, document: DocumentNode, operation_name: str | None
) -> Policy | None:
    """The policy of the document's query operation; None for a mutation or subscription."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return None
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    policy = Policy()
    _plan(hints, fragments, policy, hints.schema.query_type, operation.selection_set, policy.plan)
    return policy


def _plan(
    hints: CacheHints,
    fragments: dict[str, FragmentDefinitionNode],
    policy: Policy,
    parent: GraphQLNamedType | None,
    selection_set: SelectionSetNode | None,
    plan: Plan,
    expanding: frozenset[str] = frozenset(),
) -> None:
    if parent is None or selection_set is None:
        return
    fields = getattr(parent, "fields", {})
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            definition = fields.get(name)
            if definition is None:
                continue  # __typename and introspection: no hint, no restriction
            hint = hints.of(parent.name, name)
            policy.restrict(hint)
            key = selection.alias.value if selection.alias else name
            stated = hint if hints.stated(parent.name, name) else None
            _hint, child = plan.setdefault(key, (stated, {}))
            target = get_named_type(definition.type)
            _plan(hints, fragments, policy, target, selection.selection_set, child, expanding)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            target = hints.schema.get_type(condition.name.value) if condition else parent
            _plan(hints, fragments, policy, target, selection.selection_set, plan, expanding)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in expanding:
                continue
            target = hints.schema.get_type(fragment.type_condition.name.value)
            inner = expanding | {name}
            _plan(hints, fragments, policy, target, fragment.selection_set, plan, inner)
