"""Instance administration beyond `admin create`: setting a person's password.

Members brought in by `commons import-csv` (or added by a treasurer without a password) have no
login until someone sets one. `commons admin set-password --email E` does it on the server's
database: the password comes from a hidden prompt (typed twice), from stdin (`--password-stdin`,
for scripts: `pass show … | commons admin set-password --email E --password-stdin`), from a file,
or is generated and printed once (`--generate`, to hand to someone who is offline). Never from the
command line, where it would sit in the shell history and in `ps`. The service hashes it with
argon2id and bumps the person's token version, so every session they had ends.
"""

from __future__ import annotations

import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from api.cli_treasurer import _domain, _engine, _fail, out

GENERATED_PASSWORD_BYTES = 12  # 16 characters of URL-safe base64, 96 bits


def _read_password(*, password_stdin: bool, password_file: Path | None, generate: bool) -> str:
    chosen = sum((password_stdin, password_file is not None, generate))
    if chosen > 1:
        raise _fail("choose one of --password-stdin, --password-file and --generate")
    if generate:
        return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot read {password_file}: {exc.strerror}") from exc
        return text.splitlines()[0] if text else ""
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _fail("no password on standard input")
        return line.rstrip("\r\n")
    password: str = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    return password


def set_password_command(
    email: str = typer.Option(..., "--email", help="The person's login email."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of standard input."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the password from this file (its first line)."
    ),
    generate: bool = typer.Option(
        False, "--generate", help="Make a random password and print it once, to hand over."
    ),
) -> None:
    """Set a person's password (e.g. a member imported from CSV) and sign them out everywhere.

    The password is prompted for (hidden, twice) unless --password-stdin, --password-file or
    --generate says otherwise; it is never taken from the command line. Exit 2 when the email
    is unknown or the password is refused (at least 10 characters)."""
    from accounts.service import find_user_id, set_password
    from ledger.db import write_transaction

    password = _read_password(password_stdin=password_stdin, password_file=password_file, generate=generate)
    with _engine() as engine, write_transaction(engine) as conn:
        user_id = find_user_id(conn, email)
        if user_id is None:
            raise _fail(f"no one has the login {email.strip().lower()}")
        _domain(lambda: set_password(conn, user_id=user_id, password=password, now=datetime.now(UTC)))
    out.print(f"password set for {email.strip().lower()} (user {user_id}); their sessions were signed out")
    if generate:
        out.print(f"  password: {password}")
        out.print("  hand it over privately; they can change it after signing in")


def register(admin_app: typer.Typer) -> None:
    admin_app.command("set-password")(set_password_command)
