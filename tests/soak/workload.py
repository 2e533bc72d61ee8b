"""The bank test's threads: clients that post transfers and retry until they know the outcome,
readers that check every balance snapshot, and the chaos thread that kills the server.

What each client saw is kept as an `Outcome` per idempotency key, so the end of the run can
compare it with what the database holds (see `tests.soak.verify`).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ledger.amounts import format_amount
from tests.soak.seed import SCALE, Bank
from tests.soak.server import Server, ServerStartError
from tests.soak.verify import Snapshot, snapshot_problems

# Refusals the workload provokes on purpose; any other 4xx is a violation.
LIMIT_CODES = frozenset({"insufficient_credit", "ceiling_exceeded"})
RETRY_CODES = frozenset({"idempotency_request_in_progress"})
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 20.0
MAX_SERVER_ERRORS = 3  # 5xx answers to one request before the client gives up on it
SHORT_READ_TIMEOUT = 0.01  # a client that gives up at once: the server may still commit


@dataclass
class Outcome:
    """One request that creates a transfer (a payment, or the reversal of one), as its client
    experienced it. `memo` is what the stored transfer must carry: it holds the key, so the
    final check can count the stored copies of each request."""

    key: str
    payer: int
    payee: int
    amount: int
    memo: str = ""
    reverses: int | None = None  # a reversal of this transfer id
    attempts: int = 0
    unknown: bool = False  # some attempt ended without an answer (reset, timeout)
    status: str = "in_flight"  # acknowledged | refused | unsettled | unexpected
    transfer_id: int | None = None
    code: str | None = None
    replayed: bool = False  # the definitive 201 was the stored answer of an earlier attempt


@dataclass
class History:
    """Everything the threads observed; appended to under one lock."""

    outcomes: list[Outcome] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    kills: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    snapshots: int = 0
    replay_probes: int = 0
    server_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def violation(self, message: str) -> None:
        with self.lock:
            self.violations.append(message)


@dataclass
class Workload:
    """Shared state of one run: where the server is, who signs in, when to stop."""

    bank: Bank
    server: Server
    history: History
    run_id: str
    seed: int
    max_amount: int
    settle_seconds: float
    short_timeout_fraction: float
    replay_fraction: float
    reversal_fraction: float
    stop_new: threading.Event = field(default_factory=threading.Event)  # clients: no new transfers
    stop_reads: threading.Event = field(default_factory=threading.Event)
    stop_chaos: threading.Event = field(default_factory=threading.Event)
    token: str = ""
    token_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sign_in(self, stale: str | None = None) -> None:
        """Sign the treasurer in (again, if `stale` is still the token in use)."""
        with self.token_lock:
            if stale is not None and stale != self.token:
                return
            deadline = time.monotonic() + self.settle_seconds
            with httpx.Client(base_url=self.server.base_url, timeout=READ_TIMEOUT) as http:
                while time.monotonic() < deadline:
                    try:
                        r = http.post(
                            "/api/v1/auth/token",
                            json={
                                "email": self.bank.treasurer_email,
                                "password": self.bank.password,
                            },
                        )
                    except httpx.TransportError:
                        time.sleep(0.2)
                        continue
                    if r.status_code == 200:
                        self.token = r.json()["access_token"]
                        return
                    if r.status_code >= 500:
                        self.history.violation(f"5xx on sign-in: {r.status_code} {r.text[:200]}")
                    time.sleep(0.5)
            raise RuntimeError("could not sign the treasurer in")


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def _not_sent(exc: httpx.TransportError) -> bool:
    """True when the request cannot have reached the server (so its outcome is not in doubt)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _pause(attempt: int, rng: random.Random) -> None:
    time.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * rng.uniform(0.5, 1.0))


def _payment(w: Workload, rng: random.Random, key: str) -> Outcome:
    payer, payee = rng.sample(w.bank.accounts, 2)
    return Outcome(key, payer, payee, rng.randint(1, w.max_amount), memo=key)


def _reversal(original: Outcome, key: str) -> Outcome:
    """The treasurer corrects an acknowledged payment. The service writes the memo; the reason
    (our key) ends it. A reversal has no early limit check: only the conditional UPDATE stands
    between it and a limit, which is what makes it worth sending."""
    assert original.transfer_id is not None
    memo = f"Reversal of transfer {original.transfer_id}: {key}"
    return Outcome(
        key,
        original.payee,
        original.payer,
        original.amount,
        memo=memo,
        reverses=original.transfer_id,
    )


def _request(o: Outcome) -> tuple[str, dict[str, Any]]:
    if o.reverses is not None:
        return f"/api/v1/transfers/{o.reverses}/reverse", {"reason": o.key}
    body = {
        "payer": str(o.payer),
        "payee": str(o.payee),
        "amount": format_amount(o.amount, scale=SCALE),
        "memo": o.key,
    }
    return "/api/v1/transfers", body


def _describes(got: dict[str, Any], o: Outcome) -> bool:
    reverses = None if o.reverses is None else str(o.reverses)
    mine = (str(o.payer), str(o.payee), format_amount(o.amount, scale=SCALE), o.memo, reverses)
    return (got["payer"], got["payee"], got["amount"], got["memo"], got.get("reverses")) == mine


def settle(w: Workload, http: httpx.Client, o: Outcome, rng: random.Random) -> None:
    """Post the transfer, retrying with the SAME key until a definitive answer (or give up)."""
    deadline = time.monotonic() + w.settle_seconds
    path, body = _request(o)
    server_errors = 0
    while time.monotonic() < deadline:
        short = o.attempts == 0 and rng.random() < w.short_timeout_fraction
        timeout = httpx.Timeout(
            READ_TIMEOUT,
            connect=CONNECT_TIMEOUT,
            read=SHORT_READ_TIMEOUT if short else READ_TIMEOUT,
        )
        o.attempts += 1
        token = w.token
        try:
            r = http.post(
                path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": o.key},
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            o.unknown = o.unknown or not _not_sent(exc)
            _pause(o.attempts, rng)
            continue
        code = _code(r)
        if r.status_code == 201:
            got = r.json()
            o.status, o.transfer_id = "acknowledged", int(got["id"])
            o.replayed = r.headers.get("Idempotent-Replayed") == "true"
            if not _describes(got, o):
                w.history.violation(f"{o.key}: the 201 describes another transfer: {got}")
            return
        if r.status_code == 422 and code in LIMIT_CODES:
            o.status, o.code = "refused", code
            return
        if r.status_code == 409 and code in RETRY_CODES:
            _pause(o.attempts, rng)
            continue
        if r.status_code == 401:
            w.sign_in(stale=token)
            continue
        if r.status_code >= 500:
            with w.history.lock:
                w.history.server_errors += 1
            w.history.violation(f"{o.key}: {r.status_code} from POST {path}: {r.text[:200]}")
            server_errors += 1
            if server_errors < MAX_SERVER_ERRORS:  # "nothing was changed": a retry is fair
                _pause(o.attempts, rng)
                continue
            o.status, o.code = "unexpected", code
            return
        o.status, o.code = "unexpected", code
        w.history.violation(f"{o.key}: unexpected {r.status_code} {code}: {r.text[:200]}")
        return
    o.status = "unsettled"
    w.history.violation(
        f"{o.key}: no definitive answer within {w.settle_seconds:.0f} s ({o.attempts} attempts)"
    )


def probe_replay(w: Workload, http: httpx.Client, o: Outcome, rng: random.Random) -> None:
    """Send an acknowledged request again: the stored answer must come back, nothing re-run."""
    deadline = time.monotonic() + w.settle_seconds
    path, body = _request(o)
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        token = w.token
        try:
            r = http.post(
                path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": o.key},
            )
        except httpx.TransportError:
            _pause(attempt, rng)
            continue
        if r.status_code == 401:
            w.sign_in(stale=token)
            continue
        with w.history.lock:
            w.history.replay_probes += 1
        replayed = r.headers.get("Idempotent-Replayed") == "true"
        if r.status_code != 201 or not replayed or int(r.json()["id"]) != o.transfer_id:
            w.history.violation(
                f"{o.key}: replay of acknowledged transfer {o.transfer_id} answered "
                f"{r.status_code} (replayed={replayed}): {r.text[:200]}"
            )
        return
    w.history.violation(f"{o.key}: replay probe got no answer within {w.settle_seconds:.0f} s")


def client(w: Workload, index: int) -> None:
    rng = random.Random(w.seed * 1000 + index)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=w.server.base_url, limits=limits) as http:
        n = 0
        reversible: list[Outcome] = []  # this client's acknowledged payments, not yet reversed
        while not w.stop_new.is_set():
            key = f"{w.run_id}-c{index}-{n}"
            n += 1
            if reversible and rng.random() < w.reversal_fraction:
                o = _reversal(reversible.pop(rng.randrange(len(reversible))), key)
            else:
                o = _payment(w, rng, key)
            w.history.add(o)
            settle(w, http, o, rng)
            if o.status == "acknowledged" and o.reverses is None:
                reversible = [*reversible[-50:], o]
            if o.status == "acknowledged" and rng.random() < w.replay_fraction:
                probe_replay(w, http, o, rng)


def read_snapshot(w: Workload, http: httpx.Client) -> Snapshot | None:
    """Every account of the co-op in ONE page: one SELECT, hence one consistent snapshot."""
    token = w.token
    try:
        r = http.get(
            f"/api/v1/coops/{w.bank.slug}/accounts",
            params={"limit": 200},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.TransportError:
        return None
    if r.status_code == 401:
        w.sign_in(stale=token)
        return None
    if r.status_code != 200:
        if r.status_code >= 500:
            with w.history.lock:
                w.history.server_errors += 1
        w.history.violation(f"{r.status_code} from GET accounts: {r.text[:200]}")
        return None
    return Snapshot.from_page(r.json(), scale=SCALE)


def reader(w: Workload, index: int) -> None:
    rng = random.Random(w.seed * 1000 + 500 + index)
    with httpx.Client(
        base_url=w.server.base_url, timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    ) as http:
        while not w.stop_reads.is_set():
            snapshot = read_snapshot(w, http)
            if snapshot is None:
                w.stop_reads.wait(0.2)
                continue
            with w.history.lock:
                w.history.snapshots += 1
            for problem in snapshot_problems(snapshot, expected_accounts=w.bank.accounts):
                w.history.violation(f"snapshot: {problem}")
            w.stop_reads.wait(rng.uniform(0.02, 0.1))


def chaos(w: Workload, interval: tuple[float, float]) -> None:
    """Kill the server with SIGKILL every `interval` seconds (uniform); restart; wait for health."""
    rng = random.Random(w.seed * 1000 + 999)
    while not w.stop_chaos.wait(rng.uniform(*interval)):
        w.server.kill()
        with w.history.lock:
            w.history.kills += 1
        try:
            seconds = w.server.start()
        except ServerStartError as exc:
            w.history.violation(f"restart after kill {w.history.kills}: {exc}")
            return
        with w.history.lock:
            w.history.restart_seconds.append(seconds)
