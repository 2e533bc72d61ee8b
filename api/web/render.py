"""Jinja2 rendering for the web pages: one environment, autoescaped, with the ledger's filters."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import MediaType, Response

from ledger.amounts import format_amount

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def hours(amount: int | None, scale: int = 2, *, signed: bool = False) -> str:
    """An amount in the unit's words: '1.50' for scale 2; '+1.50' when `signed`."""
    if amount is None:
        return "no limit"
    text = format_amount(amount, scale=scale)
    return f"+{text}" if signed and amount > 0 else text.replace("-", "\u2212")


def day(value: date | datetime | None, *, short: bool = False) -> str:
    """'25 Nov 2026'; short: '25 Nov' (tables on a phone)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return f"{value.day} {value:%b}" if short else f"{value.day} {value:%b %Y}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hours"] = hours
    env.filters["day"] = day
    return env


ENV = _environment()


def render(template: str, *, status: int = 200, **context: Any) -> Response[str]:
    html = ENV.get_template(template).render(**context)
    return Response(
        content=html,
        status_code=status,
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store"},
    )
