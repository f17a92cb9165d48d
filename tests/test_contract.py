"""The served schema is a superset of the public contract, with exactly its names and types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_client_schema,
    build_schema,
    get_introspection_query,
    is_non_null_type,
    print_ast,
)
from graphql.utilities import get_default_value_ast

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.tests.conftest import client_of

#: The repository's own copy of the public GraphQL contract: what the React team downloads and
#: what the served schema is checked against, so a clone without `../shared` beside it tests too.
CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "schema" / "gateway.graphql"
#: The shared contracts beside the clone (CI always has them); DOCKYARD_CONTRACT names their
#: gateway.graphql elsewhere (a worktree's checkout).
SHARED_CONTRACTS = (
    Path(os.environ["DOCKYARD_CONTRACT"]).parent
    if os.environ.get("DOCKYARD_CONTRACT")
    else Path(__file__).resolve().parent.parent.parent / "shared" / "contract"
)
#: The shared contract the copy is: gateway-next.graphql, the React team's target, now all served.
SHARED_TARGET = SHARED_CONTRACTS / "gateway-next.graphql"
#: The shared contract served before it, which the target extends.
SHARED_PREVIOUS = SHARED_CONTRACTS / "gateway.graphql"


def contract_schema() -> GraphQLSchema:
    """The repository's copy of the contract, parsed; a missing copy fails the test."""
    if not CONTRACT.is_file():
        pytest.fail(f"the repository's copy of the contract is missing: expected it at {CONTRACT}")
    return build_schema(CONTRACT.read_text())


def shared_contract(path: Path) -> Path:
    """A shared contract beside the clone; without `../shared` the comparison is skipped."""
    if not SHARED_CONTRACTS.is_dir():
        pytest.skip(
            f"no shared contracts at {SHARED_CONTRACTS} (a clone without ../shared beside it): "
            "the copy is compared with them in CI, which always has them"
        )
    if not path.is_file():
        pytest.fail(f"the shared contracts at {SHARED_CONTRACTS} lack {path.name}")
    return path


def served_schema() -> GraphQLSchema:
    """What the gateway actually serves, learned by introspection over POST /graphql."""
    app = create_app(GatewaySettings({}, GRAPHQL_INTROSPECTION=True))
    response = client_of(app).post("/graphql", json={"query": get_introspection_query()})
    assert response.status_code == 200 and "errors" not in response.json(), response.json()
    return build_client_schema(response.json()["data"])


def _kind(named) -> str:
    return type(named).__name__


def _default(arg) -> str | None:
    literal = get_default_value_ast(arg)
    return None if literal is None else print_ast(literal)


def _args_problems(where: str, expected: dict, actual: dict) -> list[str]:
    problems = []
    for name, arg in expected.items():
        if name not in actual:
            problems.append(f"{where}({name}:) is missing")
            continue
        if str(arg.type) != str(actual[name].type):
            problems.append(f"{where}({name}:) is {actual[name].type}, contract: {arg.type}")
        if _default(arg) != _default(actual[name]):
            problems.append(
                f"{where}({name}:) defaults to {_default(actual[name])}, contract: {_default(arg)}"
            )
    for name, arg in actual.items():
        if name not in expected and is_non_null_type(arg.type) and _default(arg) is None:
            problems.append(f"{where}({name}:) is an extra required argument")
    return problems


def contract_problems(contract: GraphQLSchema, served: GraphQLSchema) -> list[str]:
    """Every way `served` fails to be a superset of `contract` with identical names and types."""
    problems = []
    for root in ("query_type", "mutation_type", "subscription_type"):
        expected, actual = getattr(contract, root), getattr(served, root)
        if expected is not None and (actual is None or actual.name != expected.name):
            problems.append(f"root {root} is {actual and actual.name}, contract: {expected.name}")
    for name, expected in contract.type_map.items():
        if name.startswith("__"):
            continue
        actual = served.type_map.get(name)
        if actual is None:
            problems.append(f"type {name} is missing")
            continue
        if _kind(actual) != _kind(expected):
            problems.append(f"type {name} is a {_kind(actual)}, contract: {_kind(expected)}")
            continue
        if isinstance(expected, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in expected.fields.items():
                where = f"{name}.{field_name}"
                if field_name not in actual.fields:
                    problems.append(f"{where} is missing")
                    continue
                served_field = actual.fields[field_name]
                if str(served_field.type) != str(field.type):
                    problems.append(f"{where} is {served_field.type}, contract: {field.type}")
                problems += _args_problems(where, field.args, served_field.args)
            expected_interfaces = {i.name for i in expected.interfaces}
            if not expected_interfaces <= {i.name for i in actual.interfaces}:
                problems.append(f"type {name} lacks interfaces of {sorted(expected_interfaces)}")
        elif isinstance(expected, GraphQLInputObjectType):
            problems += _args_problems(f"input {name}", expected.fields, actual.fields)
        elif isinstance(expected, GraphQLEnumType):
            for value in expected.values:
                if value not in actual.values:
                    problems.append(f"enum value {name}.{value} is missing")
        elif isinstance(expected, GraphQLUnionType):
            members = {t.name for t in expected.types}
            if members != {t.name for t in actual.types}:
                problems.append(f"union {name} members differ from the contract's")
        elif not isinstance(expected, GraphQLScalarType):
            problems.append(f"type {name}: unexpected kind {_kind(expected)}")
    return problems


def test_the_served_schema_is_a_superset_of_the_contract():
    contract = contract_schema()
    assert contract_problems(contract, served_schema()) == []
    # The comparison did look at everything: every contract type was found.
    assert {"Query", "Mutation", "Subscription", "File", "Task", "LogChunk"} <= set(
        contract.type_map
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("me: User!", "me: User"), "Query.me is User, contract: User!"),
        (("logout: Boolean!", ""), "Mutation.logout is missing"),
        (
            (
                "first: Int = 20, after: String, search: String): FileConnection",
                "first: Int = 10, after: String, search: String): FileConnection",
            ),
            "Query.files(first:) defaults to 10, contract: 20",
        ),
        (("TIMED_OUT", ""), "enum value TaskStatus.TIMED_OUT is missing"),
        (("memoryLimitMb: Int", "memoryLimitMb: Float"), "input CreateTaskInput(memoryLimitMb:)"),
        (("taskLogs(id: ID!)", "taskLogs(id: ID!, since: Int!)"), "extra required argument"),
        (("scalar BigInt", "enum BigInt { X }"), "type BigInt is a GraphQLEnumType"),
    ],
)
def test_the_comparison_notices_a_departure_from_the_contract(change, problem):
    contract = contract_schema()
    old, new = change
    source = CONTRACT.read_text()
    assert old in source
    departed = build_schema(source.replace(old, new, 1))
    problems = contract_problems(contract, departed)
    assert any(problem in p for p in problems), problems


def test_the_served_schema_declares_apollos_cache_control_directive():
    served = served_schema()
    directive = served.get_directive("cacheControl")
    assert directive is not None, "@cacheControl is not declared"
    assert {name: str(arg.type) for name, arg in directive.args.items()} == {
        "maxAge": "Int",
        "scope": "CacheControlScope",
        "inheritMaxAge": "Boolean",
    }
    assert {location.name for location in directive.locations} == {
        "FIELD_DEFINITION",
        "OBJECT",
        "INTERFACE",
        "UNION",
    }
    scope = served.get_type("CacheControlScope")
    assert isinstance(scope, GraphQLEnumType) and set(scope.values) == {"PUBLIC", "PRIVATE"}


def test_the_copy_is_the_shared_target_contract_byte_for_byte():
    target = shared_contract(SHARED_TARGET)
    assert CONTRACT.read_bytes() == target.read_bytes(), (
        f"{CONTRACT} differs from {target}: copy the shared contract into the repository"
    )


def test_the_copy_covers_the_previously_served_shared_contract():
    # So a schema serving the copy also serves every client of the previous contract.
    previous = build_schema(shared_contract(SHARED_PREVIOUS).read_text())
    assert contract_problems(previous, contract_schema()) == []
