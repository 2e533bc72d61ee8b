"""Browser tests: a real server (uvicorn in a thread) on a seeded SQLite database, driven by
Playwright through Debian's Chromium at /usr/bin/chromium.

Without Chromium these tests skip with a message on a laptop and FAIL under CI (CI=true),
where `.ci/run` installs it. Screenshots go to artifacts/screenshots/ (not committed).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from api.demo import DEMO_PASSWORD, seed
from api.settings import Settings
from ledger.db import make_engine
from migrations import upgrade_to_head

CHROMIUM = os.environ.get("COMMONS_TEST_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}
PASSWORD = DEMO_PASSWORD


def _require_chromium() -> None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if IN_CI:
        pytest.fail(message + "; under CI the browser tests must run", pytrace=False)
    pytest.skip(message + "; install it to run the browser tests")


OFFICER = "officer@valley.example"
FEDERATION_COOPS = ("bakery", "farm", "energy")


def seed_federation(engine: Any) -> None:
    """Valley Federation: Riverside and three more co-ops, and an officer (no obligations yet)."""
    from datetime import UTC, datetime

    from accounts.actor import Actor
    from accounts.service import create_coop, create_user, find_user_id
    from clearing import service as fed
    from clearing.rates import parse_rate
    from ledger.db import write_transaction

    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        admin_id = find_user_id(conn, "admin@riverside.example")
        assert admin_id is not None
        admin = Actor(admin_id, True)
        for slug in FEDERATION_COOPS:
            create_coop(
                conn,
                actor=admin,
                slug=slug,
                name=f"{slug.title()} Co-op",
                unit_code="EUR",
                scale=2,
                default_min_balance=None,
                default_max_balance=None,
                claim_expiry_days=30,
                max_transfer_amount=10**8,
                now=now,
            )
        federation = fed.create_federation(
            conn,
            actor=admin,
            slug="valley",
            name="Valley Federation",
            unit_code="VAL",
            scale=2,
            now=now,
        )
        for slug in ("riverside", *FEDERATION_COOPS):
            fed.join_federation(
                conn,
                requester=admin,
                federation=federation,
                coop_slug=slug,
                rate=parse_rate("1"),
                min_balance=None,
                max_balance=None,
                now=now,
            )
        create_user(conn, email=OFFICER, name="Olu Officer", password=PASSWORD, now=now)
        fed.appoint_officer(conn, actor=admin, federation=federation, email=OFFICER, now=now)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@pytest.fixture(scope="session")
def web_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The served SQLite database, seeded: tests may add what they need to it through the services."""
    _require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'commons.db'}"
    upgrade_to_head(url)
    engine = make_engine(url, pool_size=2)
    seed(engine)
    seed_federation(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def base_url(web_db_url: str) -> Iterator[str]:
    """The demo co-op (Riverside Time Bank) served on a free port for the whole session."""
    url = web_db_url
    app = create_app(
        Settings(database_url=url, secret_key="web-test-" + "s" * 40, demo_mode=True),
        sweep_claims=False,
    )
    port = _free_port()
    server = ThreadedServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser(base_url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, base_url: str) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (its own cookies: its own person)."""
    contexts = []

    def make(viewport: dict[str, int] = PHONE) -> Any:
        context = browser.new_context(base_url=base_url, viewport=viewport, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for c in contexts:
        c.close()


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/home$"))


def shoot(page: Any, name: str) -> None:
    """Full-page screenshots at phone and laptop widths; fail if anything runs off the side."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
        page.set_viewport_size(viewport)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
        assert overflow <= 0, f"{name} at {label} width scrolls sideways by {overflow}px"
    page.set_viewport_size(PHONE)


def balance(page: Any) -> str:
    page.goto("/home")
    return str(page.get_by_test_id("balance").inner_text()).strip()
