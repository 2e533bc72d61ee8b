"""The treasurer's obligations page, through the app's own HTTP stack on both engines (no
browser): the co-op's obligations and the ones waiting on it, confirm and dispute with CSRF and a
per-form idempotency key, stale forms refused, and only the debtor's treasurer deciding.
The browser walk-through is tests/web/test_treasurer.py's."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from accounts import service as accounts
from accounts.actor import Actor, CoopRole, Role
from api.app import create_app
from api.settings import Settings
from clearing import obligations as ob
from clearing import service as fed
from clearing.obligation_csv import ObligationInput
from clearing.rates import parse_rate
from ledger.db import make_engine, read_transaction, write_transaction

PASSWORD = "obligations-test-password"
SECRET = "web-obligations-" + "s" * 40
TESS = "tess@orchard.example"  # orchard's treasurer
ANA = "ana@orchard.example"  # an orchard member


@dataclass
class World:
    engine: Engine
    treasurers: dict[str, Actor]  # coop slug -> its treasurer
    ids: dict[str, int]  # external id -> obligation id

    def obligation(self, external_id: str) -> ob.ObligationRecord:
        with read_transaction(self.engine) as conn:
            return ob.get_obligation(conn, self.ids[external_id])


def seed(engine: Engine) -> World:
    """Hills federation: orchard, mill and bakery, each with a treasurer; a lone co-op outside.

    m-1  orchard owes mill 12.50, entered by mill      → pending, waiting on orchard
    b-1  orchard owes bakery 3.00, entered by bakery   → pending, waiting on orchard
    o-1  orchard owes mill 5.00, entered by orchard    → confirmed
    o-2  bakery owes orchard 7.00, entered by orchard  → pending, waiting on bakery
    x-1  mill owes bakery 9.00, entered by mill        → confirmed; not orchard's business
    """
    now = datetime.now(UTC)
    treasurers: dict[str, Actor] = {}
    with write_transaction(engine) as conn:
        admin = Actor(
            accounts.create_user(
                conn, email="admin@hills.example", name="Admin", password=None, is_admin=True, now=now
            ),
            True,
        )
        for slug in ("orchard", "mill", "bakery", "lone"):
            coop = accounts.create_coop(
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
            email = TESS if slug == "orchard" else f"treasurer@{slug}.example"
            user_id, account_id, _ = accounts.add_member(
                conn,
                actor=admin,
                slug=slug,
                email=email,
                name=f"{slug.title()} Treasurer",
                role=Role.TREASURER,
                password=PASSWORD if slug in ("orchard", "lone") else None,
                now=now,
            )
            treasurers[slug] = Actor(
                user_id, False, (CoopRole(coop.id, slug, coop.ledger_id, Role.TREASURER, account_id),)
            )
        accounts.add_member(
            conn,
            actor=admin,
            slug="orchard",
            email=ANA,
            name="Ana",
            role=Role.MEMBER,
            password=PASSWORD,
            now=now,
        )
        federation = fed.create_federation(
            conn, actor=admin, slug="hills", name="Hills Federation", unit_code="HIL", scale=2, now=now
        )
        for slug in ("orchard", "mill", "bakery"):
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
        ids: dict[str, int] = {}
        for external_id, debtor, creditor, amount, by in (
            ("m-1", "orchard", "mill", 1250, "mill"),
            ("b-1", "orchard", "bakery", 300, "bakery"),
            ("o-1", "orchard", "mill", 500, "orchard"),
            ("o-2", "bakery", "orchard", 700, "orchard"),
            ("x-1", "mill", "bakery", 900, "mill"),
        ):
            record, created = ob.record_obligation(
                conn,
                requester=treasurers[by],
                federation=federation,
                data=ObligationInput(external_id, debtor, creditor, amount, None, f"invoice {external_id}"),
                now=now,
            )
            assert created
            ids[external_id] = record.id
    return World(engine, treasurers, ids)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    engine = make_engine(db_url, pool_size=2)
    yield seed(engine)
    engine.dispose()


@pytest.fixture
def app(db_url: str, world: World) -> Any:
    return create_app(Settings(database_url=db_url, secret_key=SECRET), sweep_claims=False)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return html.unescape(match[1])


def signed_in(app: Any, email: str) -> TestClient[Any]:
    client: TestClient[Any] = TestClient(app=app, base_url="https://testserver.local")
    client.__enter__()
    page = client.get("/sign-in").text
    r = client.post(
        "/sign-in",
        data={"csrf": csrf_of(page), "email": email, "password": PASSWORD, "next": "/home"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def tess(app: Any) -> Iterator[TestClient[Any]]:
    client = signed_in(app, TESS)
    yield client
    client.__exit__(None, None, None)


def form_of(page: str, obligation_id: int, action: str) -> dict[str, str]:
    """The hidden fields of one action form on the page."""
    match = re.search(
        rf'<form method="post" action="/treasurer/obligations/{obligation_id}/{action}"[^>]*>(.*?)</form>',
        page,
        re.S,
    )
    assert match, f"no {action} form for obligation {obligation_id}"
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', match[1]))
    return {k: html.unescape(v) for k, v in fields.items()}


def has_form(page: str, obligation_id: int, action: str) -> bool:
    return f'action="/treasurer/obligations/{obligation_id}/{action}"' in page


def waiting_section(page: str) -> str:
    start = page.index('id="waiting-title"')
    return page[start : page.index('id="all-title"')]


def test_the_page_shows_the_coops_obligations_and_what_waits_for_it(
    tess: TestClient[Any], world: World
) -> None:
    r = tess.get("/treasurer/obligations")

    assert r.status_code == 200, r.text
    page = r.text
    waiting = waiting_section(page)
    assert "m-1" in waiting and "b-1" in waiting
    assert "o-2" not in waiting and "o-1" not in waiting  # o-2 waits on bakery; o-1 is confirmed
    for external_id in ("m-1", "b-1", "o-1", "o-2"):
        assert f'data-testid="obligation-{external_id}"' in page
    assert "x-1" not in page  # between two other co-ops
    assert has_form(page, world.ids["m-1"], "confirm") and has_form(page, world.ids["m-1"], "dispute")
    assert has_form(page, world.ids["o-1"], "dispute") and not has_form(page, world.ids["o-1"], "confirm")
    assert not has_form(page, world.ids["o-2"], "confirm") and not has_form(page, world.ids["o-2"], "dispute")
    assert "12.50" in page and "HIL" in page

    confirmed = tess.get("/treasurer/obligations?status=confirmed").text
    assert 'data-testid="obligation-o-1"' in confirmed and 'data-testid="obligation-m-1"' not in confirmed

    # The members page links to it.
    assert 'href="/treasurer/obligations"' in tess.get("/treasurer").text


def test_confirm_acts_once_per_rendered_form(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["m-1"]
    form = form_of(tess.get("/treasurer/obligations").text, oid, "confirm")

    answers = [
        tess.post(f"/treasurer/obligations/{oid}/confirm", data=form, follow_redirects=False)
        for _ in range(2)
    ]

    assert [a.status_code for a in answers] == [303, 303]
    assert all(a.headers["location"] == "/treasurer/obligations" for a in answers)
    record = world.obligation("m-1")
    assert (record.status, record.version) == (ob.CONFIRMED, 1)  # one transition, not two
    page = tess.get("/treasurer/obligations").text
    assert "You confirmed obligation m-1 (orchard owes mill 12.50 HIL)." in html.unescape(page)
    assert "m-1" not in waiting_section(page)


def test_dispute_with_a_reason_then_confirm_after_all(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["b-1"]
    form = form_of(tess.get("/treasurer/obligations").text, oid, "dispute")

    r = tess.post(
        f"/treasurer/obligations/{oid}/dispute",
        data={**form, "reason": "we never got the bread"},
        follow_redirects=False,
    )

    assert r.status_code == 303, r.text
    record = world.obligation("b-1")
    assert (record.status, record.status_note) == (ob.DISPUTED, "we never got the bread")
    page = tess.get("/treasurer/obligations").text
    assert "we never got the bread" in page
    assert has_form(page, oid, "confirm") and not has_form(page, oid, "dispute")

    r = tess.post(
        f"/treasurer/obligations/{oid}/confirm", data=form_of(page, oid, "confirm"), follow_redirects=False
    )

    assert r.status_code == 303
    assert world.obligation("b-1").status == ob.CONFIRMED


def test_a_form_drawn_before_the_obligation_changed_is_refused(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["m-1"]
    form = form_of(tess.get("/treasurer/obligations").text, oid, "confirm")
    with write_transaction(world.engine) as conn:  # the creditor waives it meanwhile
        ob.cancel_obligation(
            conn,
            requester=world.treasurers["mill"],
            obligation_id=oid,
            reason="paid in cash",
            now=datetime.now(UTC),
        )

    r = tess.post(f"/treasurer/obligations/{oid}/confirm", data=form, follow_redirects=False)

    assert r.status_code == 409
    assert "This changed after the page was drawn" in html.unescape(r.text)
    assert world.obligation("m-1").status == ob.CANCELLED


def test_a_form_key_reused_for_another_decision_is_refused(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["m-1"]
    form = form_of(tess.get("/treasurer/obligations").text, oid, "dispute")
    first = tess.post(
        f"/treasurer/obligations/{oid}/dispute", data={**form, "reason": "too much"}, follow_redirects=False
    )
    assert first.status_code == 303

    again = tess.post(
        f"/treasurer/obligations/{oid}/dispute",
        data={**form, "reason": "other words"},
        follow_redirects=False,
    )

    assert again.status_code == 422
    assert "already sent with other values" in html.unescape(again.text)
    assert world.obligation("m-1").status_note == "too much"


def test_a_decision_already_taken_elsewhere_is_explained(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["m-1"]
    page = tess.get("/treasurer/obligations").text
    confirm = form_of(page, oid, "confirm")
    dispute = form_of(page, oid, "dispute")
    assert (
        tess.post(f"/treasurer/obligations/{oid}/confirm", data=confirm, follow_redirects=False).status_code
        == 303
    )

    # The dispute form of the same drawing: the obligation's version moved on.
    r = tess.post(f"/treasurer/obligations/{oid}/dispute", data=dispute, follow_redirects=False)

    assert r.status_code == 409
    assert world.obligation("m-1").status == ob.CONFIRMED


def test_without_the_sessions_csrf_token_nothing_happens(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["m-1"]
    form = form_of(tess.get("/treasurer/obligations").text, oid, "confirm")

    r = tess.post(
        f"/treasurer/obligations/{oid}/confirm", data={**form, "csrf": "forged"}, follow_redirects=False
    )

    assert r.status_code == 403
    assert world.obligation("m-1").status == ob.PENDING


def test_the_creditor_cannot_confirm_its_own_invoice(tess: TestClient[Any], world: World) -> None:
    """o-2 waits on bakery; orchard's treasurer forging a confirm form gets the service's no."""
    oid = world.ids["o-2"]
    record = world.obligation("o-2")
    csrf = csrf_of(tess.get("/treasurer/obligations").text)

    r = tess.post(
        f"/treasurer/obligations/{oid}/confirm",
        data={"csrf": csrf, "key": "web-forged-confirm", "version": str(record.version)},
        follow_redirects=False,
    )

    assert r.status_code == 403
    assert "You are not allowed to do this." in r.text
    assert world.obligation("o-2").status == ob.PENDING


def test_another_federations_obligation_is_not_found(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["x-1"]
    csrf = csrf_of(tess.get("/treasurer/obligations").text)

    r = tess.post(
        f"/treasurer/obligations/{oid}/dispute",
        data={"csrf": csrf, "key": "web-forged-dispute", "version": "0"},
        follow_redirects=False,
    )

    assert r.status_code == 404
    assert world.obligation("x-1").status == ob.CONFIRMED  # not disputed


def test_an_overlong_reason_is_refused_next_to_its_field(tess: TestClient[Any], world: World) -> None:
    oid = world.ids["b-1"]
    form = form_of(tess.get("/treasurer/obligations").text, oid, "dispute")

    r = tess.post(
        f"/treasurer/obligations/{oid}/dispute", data={**form, "reason": "x" * 501}, follow_redirects=False
    )

    assert r.status_code == 422
    assert f'id="reason-{oid}-error"' in r.text
    assert world.obligation("b-1").status == ob.PENDING


def test_members_cannot_open_the_page(app: Any) -> None:
    client = signed_in(app, ANA)
    try:
        assert client.get("/treasurer/obligations").status_code == 403
    finally:
        client.__exit__(None, None, None)


def test_a_coop_outside_any_federation_is_told_so(app: Any) -> None:
    client = signed_in(app, "treasurer@lone.example")
    try:
        r = client.get("/treasurer/obligations")
        assert r.status_code == 200
        assert "not a member of a federation" in r.text
    finally:
        client.__exit__(None, None, None)
