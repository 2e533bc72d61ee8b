"""`commons admin set-password`: a member imported from CSV gets a login, on both engines.

The password never comes from the command line; it is hashed with argon2id; the person's token
version is bumped and their refresh tokens revoked, so every earlier session ends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from accounts import service as accounts
from accounts import tokens
from api.cli import app
from ledger import tables as t
from ledger.csv_import import import_csv
from ledger.db import read_transaction, write_transaction
from ledger.errors import DomainError
from tests.treasurer.conftest import Book

SECRET = "set-password-test-" + "s" * 40
PASSWORD = "correct horse battery"
EMAIL = "imported@oldbank.example.org"


@pytest.fixture
def imported(book: Book, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Book:
    """Riverside with one member brought in by import-csv (no password), and the command pointed
    at the same database."""
    members = tmp_path / "members.csv"
    members.write_text(f"name,email\nImported Person,{EMAIL.upper()}\n", encoding="utf-8")
    transfers = tmp_path / "transfers.csv"
    transfers.write_text("date,from_email,to_email,hours,reason\n", encoding="utf-8")
    report = import_csv(
        book.engine,
        slug="riverside",
        members_csv=members,
        transfers_csv=transfers,
        as_email="tess@riverside.example.org",
        now=datetime.now(UTC),
    )
    assert report.members_added == 1
    monkeypatch.setenv("COMMONS_DATABASE_URL", db_url)
    return book


def user_row(engine: Engine, email: str = EMAIL) -> sa.Row[tuple[int, str | None, int]]:
    u = t.users
    with read_transaction(engine) as conn:
        return conn.execute(
            sa.select(u.c.id, u.c.password_hash, u.c.token_version).where(u.c.email == email)
        ).one()


def sign_in(engine: Engine, password: str, email: str = EMAIL) -> accounts.TokenPair:
    with write_transaction(engine) as conn:
        return accounts.login(conn, email=email, password=password, secret=SECRET, now=datetime.now(UTC))


def set_password(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["admin", "set-password", *args], input=input)
    return result.exit_code, result.output


def test_an_imported_member_has_no_login_until_a_password_is_set(imported: Book) -> None:
    assert user_row(imported.engine).password_hash is None
    with pytest.raises(DomainError, match="wrong"):
        sign_in(imported.engine, PASSWORD)

    code, output = set_password("--email", EMAIL, "--password-stdin", input=PASSWORD + "\n")

    assert code == 0, output
    assert "password set for imported@oldbank.example.org" in output
    assert PASSWORD not in output
    row = user_row(imported.engine)
    assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert sign_in(imported.engine, PASSWORD).access_token


def test_setting_a_password_ends_every_session(imported: Book) -> None:
    set_password("--email", EMAIL, "--password-stdin", input=PASSWORD + "\n")
    pair = sign_in(imported.engine, PASSWORD)
    claims = tokens.decode_access_token(pair.access_token, secret=SECRET)
    with read_transaction(imported.engine) as conn:
        accounts.load_actor(conn, claims)  # valid now
    version = user_row(imported.engine).token_version

    code, output = set_password("--email", EMAIL, "--password-stdin", input="another long password\n")

    assert code == 0, output
    assert user_row(imported.engine).token_version == version + 1
    with read_transaction(imported.engine) as conn, pytest.raises(DomainError):
        accounts.load_actor(conn, claims)
    with write_transaction(imported.engine) as conn, pytest.raises(DomainError):
        accounts.refresh(conn, refresh_token=pair.refresh_token, secret=SECRET, now=datetime.now(UTC))
    with pytest.raises(DomainError):
        sign_in(imported.engine, PASSWORD)
    sign_in(imported.engine, "another long password")


def test_the_prompt_asks_twice(imported: Book) -> None:
    code, output = set_password("--email", EMAIL, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, output
    assert PASSWORD not in output  # hidden input
    sign_in(imported.engine, PASSWORD)


def test_a_mistyped_confirmation_sets_nothing(imported: Book) -> None:
    code, _ = set_password("--email", EMAIL, input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert code != 0
    assert user_row(imported.engine).password_hash is None


def test_a_generated_password_is_printed_once_and_works(imported: Book) -> None:
    code, output = set_password("--email", EMAIL, "--generate")

    assert code == 0, output
    (line,) = [line for line in output.splitlines() if "password:" in line]
    password = line.split("password:", 1)[1].strip()
    assert len(password) >= 16
    sign_in(imported.engine, password)


def test_a_password_file(imported: Book, tmp_path: Path) -> None:
    file = tmp_path / "pw.txt"
    file.write_text(PASSWORD + "\n", encoding="utf-8")

    code, output = set_password("--email", EMAIL, "--password-file", str(file))

    assert code == 0, output
    sign_in(imported.engine, PASSWORD)


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["--email", "nobody@example.org", "--password-stdin"], PASSWORD + "\n", "no one has the login"),
        (["--email", EMAIL, "--password-stdin"], "short\n", "at least 10 characters"),
        (["--email", EMAIL, "--password-stdin"], "", "no password on standard input"),
        (["--email", EMAIL, "--password-stdin", "--generate"], PASSWORD + "\n", "choose one"),
        (["--email", EMAIL, "--password", PASSWORD], None, "No such option"),  # never from argv
    ],
    ids=["unknown-email", "too-short", "empty-stdin", "two-sources", "argv"],
)
def test_refusals_change_nothing(imported: Book, args: list[str], stdin: str | None, says: str) -> None:
    before = user_row(imported.engine)

    code, output = set_password(*args, input=stdin)

    assert code == 2
    assert says in output
    assert user_row(imported.engine) == before
