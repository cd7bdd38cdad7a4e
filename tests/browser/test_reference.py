"""The interactive API reference in a real browser: Swagger UI loads from the api's own files
under its CSP, takes an API key through Authorize, and one call is tried from it."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import ConsoleErrors, screenshot
from tests.e2e.system import System

pytestmark = pytest.mark.integration


def test_the_api_reference_authorizes_with_a_key_and_tries_a_call(
    system: System, browser: BrowserContext
) -> None:
    key = system.tenant(name="reference")["api_key"]
    created = system.call("POST", "/v1/sessions", key, json={"name": "from the reference"})
    assert created.status_code == 201
    page = browser.new_page()
    errors = ConsoleErrors(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(system.stack.url["api"] + "/v1/docs")
    expect(page.get_by_role("heading", name="wagate API reference")).to_be_visible()
    expect(page.get_by_text("List sessions").first).to_be_visible(timeout=20_000)

    page.locator(".auth-wrapper button.authorize").click()
    scheme = page.locator(".modal-ux .auth-container").filter(has_text="apiKey")
    scheme.locator("input").fill(key)
    scheme.get_by_role("button", name="Apply credentials").click()
    page.locator(".modal-ux button.close-modal").click()

    page.get_by_text("List sessions").first.click()
    operation = page.locator(".opblock").filter(has_text="List sessions").first
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".responses-wrapper .live-responses-table")
    expect(response).to_contain_text("200", timeout=20_000)
    expect(response).to_contain_text(created.json()["id"])
    response.scroll_into_view_if_needed()
    screenshot(page, "api-reference.png")
    api = system.stack.url["api"]
    assert all(url.startswith(api) for url in requests), [u for u in requests if api not in u]
    assert errors.messages == []
