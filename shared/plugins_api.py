"""`GET /v1/plugins`: the plugins of the kinds a service loads, with version and status."""

from __future__ import annotations

from collections.abc import Sequence

from flask.views import MethodView
from marshmallow import Schema, fields

from shared import plugins
from shared.web import ServiceBlueprint


class PluginSchema(Schema):
    """One installed plugin: kind, entry-point name, its distribution and version, status."""

    kind = fields.String(required=True, metadata={"enum": sorted(plugins.GROUPS)})
    name = fields.String(required=True)
    distribution = fields.String(allow_none=True)
    version = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"enum": [plugins.OK, plugins.FAILED]})
    error = fields.String(allow_none=True, metadata={"description": "Why it failed to load."})


class PluginListSchema(Schema):
    """The plugins of the kinds this service loads."""

    plugins = fields.List(fields.Nested(PluginSchema), required=True)


def plugins_blueprint(kinds: Sequence[str]) -> ServiceBlueprint:
    """A blueprint answering `GET /v1/plugins` with the plugins of `kinds` (may be none)."""
    blp = ServiceBlueprint(
        "plugins", __name__, url_prefix="/v1", description="Installed plugins (docs/plugins.md)"
    )

    @blp.route("/plugins")
    class Plugins(MethodView):
        """The plugins this service loads."""

        @blp.response(200, PluginListSchema)
        def get(self):
            """List the installed plugins this service loads, with version and load status."""
            return {"plugins": plugins.listing(kinds)}

    return blp
