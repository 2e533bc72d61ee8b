"""ASGI entry point for production servers: `uvicorn --factory api.asgi:app_factory`."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from litestar import Litestar

from api.app import create_app
from api.settings import Settings
from api.startup import freeze_startup_objects

SUPERVISOR_ENV = "COMMONS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """In a worker process of `commons serve`: be killed when the supervisor dies.

    A supervisor killed with SIGKILL (no chance to stop its workers) would otherwise leave them
    serving on its port, unsupervised, beside the server started to replace it. Linux only; a
    worker that finds its supervisor already gone exits at once.
    """
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or int(supervisor) == os.getpid() or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(supervisor):
        os._exit(1)


def app_factory() -> Litestar:
    die_with_supervisor()
    demo = os.environ.get("COMMONS_DEMO") == "1"
    app = create_app(Settings.from_env(demo_mode=demo))
    freeze_startup_objects()
    return app
