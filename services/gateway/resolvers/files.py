"""Files: placeholders until the files service is wired in."""

from __future__ import annotations

from services.gateway.resolvers.root import mutation, query
from services.gateway.resolvers.unavailable import not_available_yet

for _field in ("file", "files"):
    query.set_field(_field, not_available_yet(_field))
for _field in ("uploadFile", "deleteFile"):
    mutation.set_field(_field, not_available_yet(_field))
