"""ASGI entry point for production servers: `uvicorn --factory api.asgi:app_factory`."""

from __future__ import annotations

import os

from litestar import Litestar

from api.app import create_app
from api.settings import Settings


def app_factory() -> Litestar:
    demo = os.environ.get("COMMONS_DEMO") == "1"
    return create_app(Settings.from_env(demo_mode=demo))
