"""SQLAlchemy Core handles on the federation tables (see clearing/models.py)."""

from __future__ import annotations

import sqlalchemy as sa

from clearing.models import (
    ClearingRun,
    ClearingRunCycle,
    ClearingRunItem,
    ClearingRunParticipant,
    CrossCoopPayment,
    FederationLedger,
    FederationMember,
    FederationObligation,
    FederationOfficer,
)


def _table(model: type) -> sa.Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


federation_ledgers = _table(FederationLedger)
federation_officers = _table(FederationOfficer)
federation_members = _table(FederationMember)
cross_coop_payments = _table(CrossCoopPayment)
obligations = _table(FederationObligation)
clearing_runs = _table(ClearingRun)
clearing_run_items = _table(ClearingRunItem)
clearing_run_participants = _table(ClearingRunParticipant)
clearing_run_cycles = _table(ClearingRunCycle)
