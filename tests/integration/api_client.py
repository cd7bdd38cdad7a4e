"""An in-process client of the api function (functions-framework's real Flask app), wired to
the emulators of the current test's environment."""

from __future__ import annotations

from typing import Any

import functions_framework
from flask.testing import FlaskClient

import functions.app
from functions.app import gateway


class Api:
    def __init__(self, target: str = "api") -> None:
        functions.app._gateway = None  # build a fresh Gateway from this test's environment
        app = functions_framework.create_app(target=target, source="functions/main.py")
        self.client: FlaskClient = app.test_client()
        self.admin_key = gateway().settings.admin_key.get_secret_value()  # type: ignore[union-attr]

    def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.open(path, method=method, headers=headers, **kw)

    def tenant(self, name: str = "acme", **body: Any) -> dict[str, Any]:
        response = self.call(
            "POST", "/v1/admin/tenants", self.admin_key, json={"name": name, **body}
        )
        assert response.status_code == 201, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result
