"""Parsing and validation of operations, cached by query text (clients repeat a few documents)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from ariadne.validation.query_cost import CostValidator
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, validate
from graphql.validation import ASTValidationRule, specified_rules

from services.gateway.config import GatewaySettings

#: Longer query texts are parsed and validated every time, so the cache's memory stays bounded.
MAX_CACHED_QUERY_CHARS = 8 * 1024

Rules = tuple[type[ASTValidationRule], ...]


class _Entry:
    __slots__ = ("document", "derived")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        #: What was worked out from the document: validation errors, cache policies.
        self.derived: dict[Any, Any] = {}


class DocumentCache:
    """Recently used documents with their variable-independent validation errors.

    Validating even `{ me { id } }` against the spec's rules costs graphql-core about as much
    CPU as the rest of the request; a client sends the same few documents over and over.
    """

    def __init__(self, *, max_entries: int, max_tokens: int) -> None:
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._by_text: OrderedDict[str, _Entry] = OrderedDict()
        # Keyed by identity: only documents this cache handed out are looked up, and each
        # entry keeps its document alive, so an id is never reused while it is stored.
        self._by_document: dict[int, _Entry] = {}

    def parse(self, query: str) -> DocumentNode:
        """The parsed document of `query`; raises GraphQLError when it does not parse."""
        with self._lock:
            entry = self._by_text.get(query)
            if entry is not None:
                self._by_text.move_to_end(query)
                return entry.document
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except RecursionError:
            raise GraphQLError("The operation is nested too deeply to parse.") from None
        if self.max_entries > 0 and len(query) <= MAX_CACHED_QUERY_CHARS:
            self._store(query, document)
        return document

    def _store(self, query: str, document: DocumentNode) -> None:
        with self._lock:
            if query in self._by_text:
                return
            entry = _Entry(document)
            self._by_text[query] = entry
            self._by_document[id(document)] = entry
            while len(self._by_text) > self.max_entries:
                _text, evicted = self._by_text.popitem(last=False)
                del self._by_document[id(evicted.document)]

    def errors(
        self, document: DocumentNode, rules: Rules, compute: Callable[[], list[GraphQLError]]
    ) -> list[GraphQLError]:
        """The errors of `document` under `rules`, computed once while the document is cached."""
        return self.derived(document, ("errors", rules), compute)

    def derived(self, document: DocumentNode, key: Any, compute: Callable[[], Any]) -> Any:
        """What `compute` derives from `document` (e.g. its cache policy), once while cached."""
        with self._lock:
            entry = self._by_document.get(id(document))
            if entry is not None and key in entry.derived:
                return entry.derived[key]
        value = compute()
        if entry is not None:
            with self._lock:
                entry.derived[key] = value
        return value

    def __len__(self) -> int:
        """How many documents are cached."""
        return len(self._by_text)


def query_parser(cache: DocumentCache) -> Callable[[Any, dict], DocumentNode]:
    """Ariadne `query_parser`: cached, with the token limit."""

    def parse_query(_context: Any, data: dict) -> DocumentNode:
        return cache.parse(data["query"])

    return parse_query


def _variable_dependent(rule: type[ASTValidationRule]) -> bool:
    # The cost of `files(first: $n)` depends on $n; every other rule sees only the text.
    return issubclass(rule, CostValidator) and getattr(rule, "depends_on_variables", True)


def query_validator(
    settings: GatewaySettings, cache: DocumentCache
) -> Callable[..., list[GraphQLError]]:
    """Ariadne `query_validator`: cached per document; no "did you mean" without introspection."""
    hide_suggestions = not settings.GRAPHQL_INTROSPECTION

    def run(
        schema: GraphQLSchema, document: DocumentNode, rules: Rules, max_errors: int | None
    ) -> list[GraphQLError]:
        return validate(
            schema, document, rules, max_errors=max_errors, hide_suggestions=hide_suggestions
        )

    def validate_query(
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: Collection[type[ASTValidationRule]] | None = None,
        max_errors: int | None = None,
        **_kwargs: Any,
    ) -> list[GraphQLError]:
        all_rules = tuple(rules if rules is not None else specified_rules)
        per_request = tuple(rule for rule in all_rules if _variable_dependent(rule))
        fixed = tuple(rule for rule in all_rules if not _variable_dependent(rule))
        errors = cache.errors(document, fixed, lambda: run(schema, document, fixed, max_errors))
        if errors or not per_request:
            return errors
        return run(schema, document, per_request, max_errors)

    return validate_query
