"""Fixtures for the storage tests: one ``engine`` per entry of ``tests.engines.ENGINES``.

Only non-embedded engines ask for the session-scoped ``services`` fixture (the
Redis and PostgreSQL servers, and the Redis Cluster of the ``cluster`` engine,
started once per session and emptied for each test), so the embedded engine
runs with nothing else installed or started.

``CLUSTER_PENDING`` lists the tests the ``cluster`` engine does not run yet and
why: they are skipped for it, with that reason. Converting a part to the
cluster means removing its line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest

from store.roles import Engine
from tests.engines import ENGINES

_LEDGER: Final = (
    "the ledger's history of unfiled transactions and the audit read one outbox "
    "and one system balances hash; a cluster has one of each per slot"
)

CLUSTER_PENDING: Final[dict[str, str]] = {
    "test_conformance.py::test_purchase_credits_coins_plus_bonus": _LEDGER,
    "test_conformance.py::test_purchase_is_idempotent_on_payment_id": _LEDGER,
    "test_conformance.py::test_purchase_same_payment_other_content_conflicts": _LEDGER,
    "test_conformance.py::test_gift_moves_coins_to_creator_and_platform": _LEDGER,
    "test_conformance.py::test_resending_a_gift_charges_once": _LEDGER,
    "test_conformance.py::test_concurrent_gifts_spend_exactly_the_funds": _LEDGER,
    "test_conformance.py::test_leaderboard_orders_and_matches_the_ledger": _LEDGER,
    "test_conformance.py::test_transactions_page_newest_first": _LEDGER,
    "test_conformance.py::test_audit_after_a_mixed_sequence": _LEDGER,
    "test_money_rules.py::test_first_purchase_bonus_applies_once": _LEDGER,
    "test_money_rules.py::test_concurrent_first_purchases_get_one_bonus": _LEDGER,
    "test_money_rules.py::test_purchase_rules_refuse_before_crediting": _LEDGER,
    "test_money_rules.py::test_platform_caps_per_day_and_month": _LEDGER,
    "test_money_rules.py::test_user_caps_are_lower_and_count_in_their_time_zone": _LEDGER,
    "test_money_rules.py::test_concurrent_gifts_never_overshoot_a_cap": _LEDGER,
    "test_money_rules.py::test_parental_controls_and_the_pin": _LEDGER,
    "test_money_rules.py::test_gift_rate_limit_charges_only_successes": _LEDGER,
    "test_money_rules.py::test_gift_checks_come_in_order": _LEDGER,
    "test_catalog_conformance.py::test_a_stale_price_or_an_unoffered_gift_charges_nothing": _LEDGER,
    "test_catalog_conformance.py::test_a_resend_of_a_charged_gift_replays": _LEDGER,
    "test_catalog_conformance.py::test_history_keeps_what_a_gift_was_when_sent": _LEDGER,
    "test_conformance.py::test_a_locked_account_pays_its_debt_by_buying": _LEDGER,
    "test_money_rules.py::test_refund_of_unspent_coins_takes_them_back": _LEDGER,
    "test_money_rules.py::test_chargeback_of_spent_coins_locks_and_claws_back": _LEDGER,
    "test_money_rules.py::test_clawback_table": _LEDGER,
    "test_money_rules.py::test_partly_spent_refund_claws_back_a_share": _LEDGER,
    "test_money_rules.py::test_refund_of_an_older_purchase_claws_only_later_gifts": _LEDGER,
    "test_money_rules.py::test_debt_is_paid_by_owed_purchases_and_settled": _LEDGER,
    "test_money_rules.py::test_withdrawal_lifecycle": _LEDGER,
    "test_money_rules.py::test_concurrent_withdrawals_never_overdraw": _LEDGER,
    "test_items_conformance.py::test_buying_an_item_pays_the_platform_once_per_key": _LEDGER,
    "test_items_conformance.py::test_item_refusals_come_in_order_and_change_nothing": _LEDGER,
    "test_items_conformance.py::test_bought_in_a_room_the_creator_earns_the_share": _LEDGER,
    "test_items_conformance.py::test_a_chargeback_treats_coins_spent_on_items_like_gifts": _LEDGER,
    "test_items_conformance.py::test_a_partial_refund_attributes_the_newest_item_first": _LEDGER,
    "test_refund_races.py": _LEDGER,
    "test_money_properties.py": _LEDGER,
}
"""Test id prefix (``file.py`` or ``file.py::test``, from tests/store/) -> what the
cluster engine lacks for it."""


def cluster_pending(nodeid: str) -> str | None:
    """Why the test ``nodeid`` (from tests/store/) does not run on a cluster yet."""
    name = nodeid.rpartition("tests/store/")[2]
    for prefix, reason in CLUSTER_PENDING.items():
        if name.startswith(prefix):
            return reason
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("engine_name") != "cluster":
            continue
        reason = cluster_pending(item.nodeid.partition("[")[0])
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"not on a Redis Cluster yet: {reason}"))


def _engine_params() -> list[Any]:
    return [
        pytest.param(name, id=name, marks=() if name == "embedded" else pytest.mark.scaled)
        for name in ENGINES
    ]


@pytest.fixture(params=_engine_params())
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_services(request: pytest.FixtureRequest, engine_name: str) -> Any:
    if engine_name == "embedded":
        return None
    return request.getfixturevalue("services")


@pytest.fixture
async def engine(engine_name: str, engine_services: Any, tmp_path: Path) -> AsyncIterator[Engine]:
    """A fresh engine on empty storage, closed after the test."""
    async with ENGINES[engine_name](tmp_path, engine_services) as opened:
        yield opened
