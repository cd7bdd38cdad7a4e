"""The web console in a real browser, on the whole local system: sign in with a key, create a
session, read its QR from the page and scan it with the simulator, watch it connect without a
reload, send a message and watch it walk to read, redeliver a failed webhook. Keyboard only
where a person would use it; axe-core checks each page; the CSP holds (no console errors)."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator

import pytest
import zxingcpp
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import ConsoleErrors, screenshot
from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually

pytestmark = pytest.mark.integration


def accessibility_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]]


def read_qr(page: Page) -> str:
    """What a phone's camera would read from the QR image on the screen."""
    image = page.locator("#qr-image")
    expect(image).to_have_attribute("src", re.compile("^blob:"), timeout=20_000)
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.screenshot())))
    assert found, "no QR code on the page"
    return str(found[0].text)


QR_INTERVAL_S = 4.0


@pytest.fixture
def quick_qr(system: System) -> Iterator[None]:
    """QR codes that expire within seconds, so the test sees the page refresh one."""
    before = system.sim.get("/control/config").json()["qr_interval_s"]
    system.control("config", qr_interval_s=QR_INTERVAL_S)
    yield
    system.control("config", qr_interval_s=before)


@pytest.mark.usefixtures("quick_qr")
def test_pair_send_and_redeliver_from_the_console(system: System, browser: BrowserContext) -> None:
    with webhook_receiver() as hooks:
        hooks.failing = True  # the first deliveries fail: the console redelivers one
        tenant = system.tenant(name="console", webhook_url=hooks.url + "/hooks")
        key = tenant["api_key"]
        page = browser.new_page()
        errors = ConsoleErrors(page)
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(system.stack.url["api"] + "/console")

        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
        assert accessibility_violations(page) == []
        page.get_by_label("API key").focus()
        page.keyboard.type(key)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Sessions", exact=True)).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('wagate.apiKey')") == key
        assert page.evaluate("localStorage.length") == 0 and browser.cookies() == []

        page.get_by_label("Name", exact=True).fill("front desk")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Session front desk")).to_be_visible()
        page.evaluate("window.__notReloaded = true")
        first_qr = read_qr(page)
        screenshot(page, "console-pairing.png")
        image = page.locator("#qr-image")
        first_expiry = image.get_attribute("data-expires-at")
        # The QR refreshes by itself: the simulator issues a new one every QR_INTERVAL_S.
        expect(image).not_to_have_attribute("data-expires-at", first_expiry or "", timeout=15_000)
        qr = read_qr(page)
        assert qr != first_qr
        assert accessibility_violations(page) == []
        number = f"+1555{int(time.time() * 1000) % 10_000_000:07d}7"
        scanned = system.sim.post("/control/scan", json={"qr": qr, "phone": number})
        assert scanned.status_code == 200, scanned.text
        expect(page.locator("#session-state")).to_have_attribute("data-state", "connected")
        expect(page.get_by_role("img", name="QR code")).to_be_hidden()
        assert page.evaluate("window.__notReloaded") is True  # connected without a reload

        page.get_by_label("Recipient", exact=True).fill("+15550004242")
        page.get_by_label("Message", exact=True).fill("Hello from the console")
        page.get_by_role("button", name="Send test message").press("Enter")
        row = page.locator("#sent-messages tr").filter(has_text="Hello from the console")
        expect(row.locator("[data-state]")).to_have_attribute("data-state", "read", timeout=30_000)
        timeline = [li.get_attribute("data-status") for li in row.locator("li").all()]
        assert timeline[0] == "accepted" and timeline[-1] == "read", timeline
        assert {"sent", "delivered"} <= set(timeline)
        screenshot(page, "console-session.png")

        page.get_by_role("link", name="Webhook deliveries").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Webhook deliveries", exact=True)).to_be_visible()
        failing = page.locator("#deliveries tr").filter(has_text="HTTP 500").first
        expect(failing).to_be_visible(timeout=30_000)
        delivery_id = failing.get_attribute("data-delivery-id")
        assert delivery_id
        assert accessibility_violations(page) == []
        hooks.failing = False
        entry = page.locator(f"#deliveries tr[data-delivery-id='{delivery_id}']")
        entry.get_by_role("button", name="Redeliver").focus()
        page.keyboard.press("Enter")
        expect(entry.locator("[data-state]")).to_have_attribute("data-state", "delivered")
        expect(entry).to_contain_text("1 redelivered")
        eventually(lambda: delivery_id in {e["id"] for e in hooks.events()})
        screenshot(page, "console-deliveries.png")

        page.get_by_role("link", name="Health").click()
        expect(page.locator("#health-status")).to_contain_text("ok")
        assert accessibility_violations(page) == []
        assert not [u for u in urls if key in u]  # the key never goes into a URL
        assert errors.messages == []


def test_pair_by_code_from_the_console_and_see_it_live_in_the_list(
    system: System, browser: BrowserContext
) -> None:
    key = system.tenant(name="console by code")["api_key"]
    page = browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(system.stack.url["api"] + "/console")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    number = f"+1555{int(time.time() * 1000) % 10_000_000:07d}8"
    page.get_by_label("Name", exact=True).fill("by code")
    page.get_by_label("Phone number for a pairing code (optional)").fill(number)
    page.get_by_role("button", name="Create session").click()
    shown = page.locator("#pairing-code")
    expect(shown).to_contain_text("pairing code", timeout=20_000)
    code = (shown.text_content() or "").rsplit(" ", 1)[-1]
    system.control("pair-code", code=code, phone=number)
    expect(page.locator("#session-state")).to_have_attribute("data-state", "connected")
    page.get_by_role("link", name="Sessions", exact=True).click()
    row = page.get_by_role("row").filter(has_text="by code")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "connected")
    system.control("ban", phone=number, banned=True)  # the list follows the state by itself
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "failed")
    assert errors.messages == []
