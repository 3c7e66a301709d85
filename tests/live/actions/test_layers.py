"""What the product does (``live.actions``) never depends on how it is served
over HTTP (``live.http``): handlers call actions, not the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import live.actions
from live.money_config import cash
from live.settings import Settings

ACTIONS = Path(live.actions.__file__).parent


def imported(path: Path) -> set[str]:
    """The modules ``path`` imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_action_imports_an_http_module() -> None:
    offenders = {
        path.name: sorted(
            m for m in imported(path) if m == "live.http" or m.startswith("live.http.")
        )
        for path in sorted(ACTIONS.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    assert "payouts.py" in offenders  # the walk saw the module that used to


def test_cash_rounds_down_to_the_minor_unit() -> None:
    settings = Settings(diamond_cash_rate="0.005", payout_currency="EUR")
    assert cash(settings, 1_999) == {"currency": "EUR", "amount": "9.99", "amount_minor": 999}
    assert cash(settings, 0)["amount_minor"] == 0
