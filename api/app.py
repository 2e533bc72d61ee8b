"""The Litestar application factory: `create_app(settings)`."""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from litestar import Litestar, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ServiceUnavailableException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin

from api import schemas as s
from api.errors import document_problems, handle_exception
from api.routes.accounts import AccountController
from api.routes.auth import AuthController, me
from api.routes.coops import CoopController
from api.routes.federations import FEDERATION_HANDLERS
from api.routes.transfers import TransferController, post_transfer_batch
from api.routes.treasurer import StatementController, TreasurerController
from api.runtime import Runtime, provide_actor, provide_runtime, require_json_body
from api.settings import Settings
from api.web import web_router
from ledger import pg_transfer, service
from ledger.db import is_sqlite, make_engine, write_transaction
from ledger.errors import DomainError
from migrations import is_at_head, revision_status

log = logging.getLogger("commons")


@get("/health", sync_to_thread=True, tags=["health"], raises=[ServiceUnavailableException])
def health(runtime: Runtime) -> s.Health:
    """200 when the database answers."""
    try:
        runtime.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
    except Exception as exc:
        raise DomainError("service_unavailable", "the database does not answer") from exc
    return s.Health(status="ok", database=runtime.engine.dialect.name)


class ClaimSweeper:
    """Expires claims past their co-op's claim_expiry_days, once a minute, in the background."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def sweep(self) -> int:
        with write_transaction(self.runtime.engine) as conn:
            return service.expire_claims(conn, now=self.runtime.clock())

    def run(self) -> None:
        while not self.stop.wait(self.runtime.settings.claim_sweep_seconds):
            try:
                self.sweep()
            except Exception:  # keep sweeping; a failed sweep is retried next interval
                log.exception("claim expiry sweep failed")

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="claim-sweeper", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()


def create_app(settings: Settings, *, check_migrations: bool = True, sweep_claims: bool = True) -> Litestar:
    engine = make_engine(settings.database_url, pool_size=settings.pool_size)
    if check_migrations and not is_at_head(engine):
        current, head = revision_status(engine)
        engine.dispose()
        raise DatabaseBehindError(current, head)
    runtime = Runtime(settings=settings, engine=engine)
    sweeper = ClaimSweeper(runtime)

    def on_startup() -> None:
        if sweep_claims:
            sweeper.sweep()
            sweeper.start()

    async def on_shutdown() -> None:
        sweeper.close()
        if not is_sqlite(engine):
            await pg_transfer.close_async(engine)  # POST /transfers' own connections
        engine.dispose()

    authenticated = {"actor": Provide(provide_actor, sync_to_thread=True)}
    api = Router(
        path="/api/v1",
        route_handlers=[
            AuthController,
            me,
            health,
            Router(
                path="/",
                route_handlers=[
                    *FEDERATION_HANDLERS,
                    CoopController,
                    AccountController,
                    TransferController,
                    post_transfer_batch,
                    TreasurerController,
                    StatementController,
                ],
                dependencies=authenticated,
            ),
        ],
    )
    app = Litestar(
        route_handlers=[api, web_router(settings)],
        state=State({"runtime": runtime}),
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        plugins=[s.ClosedModelSchemaPlugin()],
        before_request=require_json_body,
        request_max_body_size=settings.max_body_bytes,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(
            title="Commons",
            version="0.1.0",
            description="Mutual-credit time bank and solidarity-economy ledger",
            path="/schema",
            render_plugins=[JsonRenderPlugin(), SwaggerRenderPlugin()],
        ),
        debug=False,
    )
    document_problems(app)
    return app


class DatabaseBehindError(RuntimeError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"the database is at migration {current or 'none (empty)'} but this Commons needs {head}; "
            "run `commons db upgrade` (back up the database first)"
        )
        self.current = current
        self.head = head
