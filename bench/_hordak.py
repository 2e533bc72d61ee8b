"""The peer: django-hordak on the same PostgreSQL, driven over stdin/stdout by `bench.ledger`.

Runs only under the bench's own virtualenv (bench/.venv-hordak, see bench/requirements-hordak.txt):
it imports Django and nothing of Commons. Protocol, one JSON object per line:

  started as  python bench/_hordak.py URL ACCOUNTS [--setup]
  it answers  {"ready": true}
  then reads  {"plans": [[[payer_index, payee_index, hundredths], ...], ...]}
  and answers {"seconds": wall, "latencies": [...]}   (one thread per plan)

Each transfer is `Account.transfer_to` inside `transaction.atomic()`: one DB transaction per
transfer, as the issue prescribes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from decimal import Decimal
from urllib.parse import urlsplit


def configure(url: str) -> None:
    import django
    from django.conf import settings

    parts = urlsplit(url)
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "mptt", "hordak"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "postgres",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "127.0.0.1",
                "PORT": str(parts.port or 5432),
                "CONN_MAX_AGE": None,  # persistent connections, like a production deployment
            }
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        HORDAK_DECIMAL_PLACES=2,
        HORDAK_MAX_DIGITS=20,
        HORDAK_DEFAULT_CURRENCY="EUR",
        DEFAULT_CURRENCY="EUR",
        HORDAK_CURRENCIES=["EUR"],
        CURRENCIES=["EUR"],
        LOGGING_CONFIG=None,
    )
    django.setup()


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    configure(url)
    from django.core.management import call_command
    from django.db import connections, transaction
    from djmoney.money import Money
    from hordak.models import Account

    if "--setup" in sys.argv:
        call_command("migrate", verbosity=0)
        Account.objects.all().delete()
        for i in range(count):
            Account.objects.create(name=f"member {i}", type=Account.TYPES.asset, currencies=["EUR"])
        connections.close_all()
    accounts = list(Account.objects.order_by("id"))[:count]
    print(json.dumps({"ready": True, "accounts": len(accounts)}), flush=True)

    for line in sys.stdin:
        plans = json.loads(line)["plans"]
        latencies: list[list[float]] = [[] for _ in plans]
        errors: list[str] = []
        gate = threading.Barrier(len(plans) + 1)

        def client(i: int) -> None:
            out = latencies[i]  # noqa: B023
            gate.wait()  # noqa: B023
            try:
                for payer, payee, amount in plans[i]:  # noqa: B023
                    t0 = time.perf_counter()
                    with transaction.atomic():
                        accounts[payer].transfer_to(accounts[payee], Money(Decimal(amount) / 100, "EUR"))
                    out.append(time.perf_counter() - t0)
            except Exception as exc:  # reported to the parent, which stops the run
                errors.append(f"{type(exc).__name__}: {exc}")  # noqa: B023
            finally:
                connections.close_all()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(plans))]
        for th in threads:
            th.start()
        gate.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        seconds = time.perf_counter() - t0
        reply = {
            "seconds": seconds,
            "latencies": [x for lat in latencies for x in lat],
            "error": errors[0] if errors else None,
        }
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
