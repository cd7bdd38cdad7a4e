"""The API reference's and the console's files: served by name only, with a strict CSP."""

from __future__ import annotations

import functions_framework
import pytest
from flask.testing import FlaskClient


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    app = functions_framework.create_app(target="api", source="functions/main.py")  # type: ignore[no-untyped-call]
    test_client: FlaskClient = app.test_client()
    return test_client


def test_the_reference_page_and_swagger_ui_come_from_the_api_with_a_strict_csp(
    client: FlaskClient,
) -> None:
    page = client.get("/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "reference.js"):
        assert f"/v1/docs/assets/{asset}" in page.text
        served = client.get(f"/v1/docs/assets/{asset}")
        assert served.status_code == 200 and len(served.data) > 100, asset
        assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/v1/docs/assets/swagger-ui-bundle.js").mimetype == "text/javascript"


@pytest.mark.parametrize("name", ["nope.js", "..%2Fstatic.py", "index.css", "LICENSE.txt"])
def test_only_the_listed_files_are_served(client: FlaskClient, name: str) -> None:
    response = client.get(f"/v1/docs/assets/{name}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"]
