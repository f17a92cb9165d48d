"""The executable schema and how every operation is parsed, validated, run and reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ariadne import load_schema_from_path, make_executable_schema
from graphql import GraphQLSchema

from services.gateway.cache_control import CacheHints, Policy, query_policy
from services.gateway.clients import Clients
from services.gateway.config import GatewaySettings
from services.gateway.documents import DocumentCache, query_parser, query_validator
from services.gateway.errors import ErrorLogger, format_error
from services.gateway.limits import validation_rules
from services.gateway.resolvers import bindables
from shared.auth import TokenVerifier

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"


def build_schema() -> GraphQLSchema:
    """Load every .graphql file and bind the resolvers, snake_case on the Python side."""
    return make_executable_schema(
        load_schema_from_path(str(SCHEMA_DIR)), *bindables, convert_names_case=True
    )


def graphql_options(settings: GatewaySettings, documents: DocumentCache) -> dict[str, Any]:
    """Ariadne options of every operation: limits, introspection, error reporting."""
    return {
        "introspection": settings.GRAPHQL_INTROSPECTION,
        "query_parser": query_parser(documents),
        "query_validator": query_validator(settings, documents),
        "validation_rules": validation_rules(settings),
        "error_formatter": format_error,
        "logger": ErrorLogger(),
        # Debug would add stack traces to errors; format_error ignores it anyway.
        "debug": False,
    }


@dataclass
class Gateway:
    """The schema, the clients and the verifier, and the options every operation runs with."""

    settings: GatewaySettings
    schema: GraphQLSchema
    clients: Clients
    verifier: TokenVerifier
    #: Parsed documents, their validation and their cache policies, as long as the app lives.
    documents: DocumentCache = field(init=False, repr=False)
    cache_hints: CacheHints = field(init=False, repr=False)
    options: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Build the document cache, the schema's cache hints and the options once."""
        self.documents = DocumentCache(
            max_entries=self.settings.GRAPHQL_DOCUMENT_CACHE_SIZE,
            max_tokens=self.settings.GRAPHQL_MAX_TOKENS,
        )
        self.cache_hints = CacheHints(self.schema)
        self.options = graphql_options(self.settings, self.documents)

    def cache_policy(self, data: dict[str, Any]) -> Policy | None:
        """The cache policy of an executed request's query; None for any other operation."""
        document = self.documents.parse(data["query"])
        name = data.get("operationName")
        return self.documents.derived(
            document, ("cache policy", name), lambda: query_policy(self.cache_hints, document, name)
        )
