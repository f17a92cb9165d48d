"""Upload requests built the way apollo-upload-client and a browser build them.

apollo-upload-client (createUploadLink) extracts each File from the variables, leaving null in
its place, and appends to a FormData: `operations` (the JSON body Apollo Client would have
sent), `map` (`{"1": ["variables.file"]}`, files numbered from 1), then each file under its
number with its name. The browser encodes that FormData: a `----WebKitFormBoundary` boundary,
CRLF line breaks, a Content-Type line only on file parts (application/octet-stream when the
file has no type). Apollo Client adds its Accept header and the application the
`Apollo-Require-Preflight` header that Apollo's docs tell it to send.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass

UPLOAD_MUTATION = (
    "mutation UploadFile($file: Upload!) {\n"
    "  uploadFile(file: $file) {\n"
    "    id\n    filename\n    contentType\n    size\n    status\n    createdAt\n"
    "    __typename\n"
    "  }\n"
    "}"
)
ACCEPT = "application/graphql-response+json,application/json;q=0.9"
_BOUNDARY_CHARS = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApolloUpload:
    """A multipart upload request around one file's content: what precedes and follows it."""

    head: bytes
    tail: bytes
    content_type: str

    def body(self, content: bytes) -> bytes:
        """The whole body with `content` as the file."""
        return self.head + content + self.tail

    def headers(self, token: str | None = None, *, preflight: bool = True) -> dict[str, str]:
        """The request headers Apollo Client and the browser send."""
        headers = {"Content-Type": self.content_type, "Accept": ACCEPT}
        if preflight:
            headers["Apollo-Require-Preflight"] = "true"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers


def _part(boundary: str, disposition: str, content_type: str | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Disposition: form-data; {disposition}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def apollo_upload(
    filename: str,
    *,
    file_type: str = "",
    query: str = UPLOAD_MUTATION,
    operation_name: str | None = "UploadFile",
    variables: dict | None = None,
    files_map: dict | None = None,
) -> ApolloUpload:
    """The request apollo-upload-client sends for one File named `filename` of type `file_type`.

    `variables` and `files_map` replace what it would send, to build requests that break the
    spec; by default the file is the `file` variable.
    """
    boundary = "----WebKitFormBoundary" + "".join(
        secrets.choice(_BOUNDARY_CHARS) for _ in range(16)
    )
    operations = {
        "operationName": operation_name,
        "variables": {"file": None} if variables is None else variables,
        "extensions": {"clientLibrary": {"name": "@apollo/client", "version": "4.0.0"}},
        "query": query,
    }
    # Browsers escape these three in a multipart filename (HTML's form-data encoding).
    quoted = filename.replace("\n", "%0A").replace("\r", "%0D").replace('"', "%22")
    head = (
        _part(boundary, 'name="operations"')
        + json.dumps(operations, separators=(",", ":")).encode()
        + b"\r\n"
        + _part(boundary, 'name="map"')
        + json.dumps({"1": ["variables.file"]} if files_map is None else files_map).encode()
        + b"\r\n"
        + _part(
            boundary,
            f'name="1"; filename="{quoted}"',
            file_type or "application/octet-stream",
        )
    )
    tail = f"\r\n--{boundary}--\r\n".encode()
    return ApolloUpload(head, tail, f"multipart/form-data; boundary={boundary}")
