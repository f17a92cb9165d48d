"""dockyard.client cannot drift from the contract: it covers every root field, and regenerating
it from docs/schema/gateway.graphql and queries.graphql gives exactly the committed code."""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tomllib
from pathlib import Path

from graphql import OperationDefinitionNode, build_schema, parse

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "docs/schema/gateway.graphql"
QUERIES = REPO / "dockyard/client/queries.graphql"
GENERATED = REPO / "dockyard/client/generated"
#: ariadne-codegen pins graphql-core and ruff apart from Dockyard's, so it has a venv of its own.
CODEGEN_VENV = REPO / ".venv-codegen"
CODEGEN_REQUIREMENTS = REPO / "tools/codegen-requirements.txt"


def codegen() -> Path:
    """The ariadne-codegen executable of .venv-codegen, created as `make client` does if missing."""
    executable = CODEGEN_VENV / "bin/ariadne-codegen"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CODEGEN_VENV)], check=True)
        pip = [str(CODEGEN_VENV / "bin/python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-r", str(CODEGEN_REQUIREMENTS)], check=True)
    return executable


def test_the_operations_cover_every_root_field_of_the_contract():
    schema = build_schema(SCHEMA.read_text())
    contract = {
        (kind, name)
        for kind, root in (
            ("query", schema.query_type),
            ("mutation", schema.mutation_type),
            ("subscription", schema.subscription_type),
        )
        for name in root.fields
    }
    covered = {
        (definition.operation.value, selection.name.value)
        for definition in parse(QUERIES.read_text()).definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
    }
    assert len(contract) == 45
    assert sorted(contract - covered) == []
    assert sorted(covered - contract) == []


def test_the_committed_client_is_what_ariadne_codegen_generates_from_the_contract(tmp_path):
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ariadne-codegen"]
    config = tmp_path / "codegen.toml"
    lines = ["[tool.ariadne-codegen]"]
    for key, value in {**settings, "target_package_path": str(tmp_path)}.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml(value)}")
    for scalar, mapping in settings.get("scalars", {}).items():
        lines.append(f"[tool.ariadne-codegen.scalars.{scalar}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in mapping.items())
    config.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [str(codegen()), "--config", str(config), "client"],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / settings["target_package_name"]
    comparison = filecmp.dircmp(fresh, GENERATED, ignore=["__pycache__"])
    assert (comparison.left_only, comparison.right_only) == ([], [])
    differing = [
        name
        for name in sorted(comparison.common_files)
        if (fresh / name).read_text() != (GENERATED / name).read_text()
    ]
    assert differing == [], "run `make client` and commit dockyard/client/generated"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return f'"{value}"'
