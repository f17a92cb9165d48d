"""The API docs page loads Swagger UI from this process only, never from another host."""

from __future__ import annotations

import re

from shared.config import CommonSettings
from shared.web import create_service_app


def test_the_docs_page_references_no_external_host_and_its_assets_are_served():
    app, _api = create_service_app("example", CommonSettings({}), title="Example")
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "//" not in html
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(references) == [
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui-standalone-preset.js",
        "/docs/assets/swagger-ui.css",
    ]
    for reference in references:
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.data) > 1000
        assert asset.mimetype in {"text/javascript", "application/javascript", "text/css"}
        asset.close()


def test_a_path_outside_the_assets_is_not_served():
    app, _api = create_service_app("example", CommonSettings({}), title="Example")
    client = app.test_client()
    assert client.get("/docs/assets/../../../../etc/passwd").status_code == 404
    assert client.get("/docs/assets/%2e%2e/__init__.py").status_code == 404
