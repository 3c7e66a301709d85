"""The shipped Prometheus rules and Grafana dashboard: valid, and over metrics the
server really exposes and docs/OPERATIONS.md describes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from live.metrics import ENGINE_VALUE_HELP, Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "monitoring" / "prometheus" / "alerts.yml"
RULES_TESTS = ROOT / "docs" / "monitoring" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "docs" / "monitoring" / "grafana" / "live.json"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
METRIC_NAME = re.compile(r"\b((?:live|process)_[a-z_]+)\b")


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run .ci/install-services (Debian's prometheus package)"
    return promtool


def _exposed() -> set[str]:
    """Every sample name the node's /metrics can carry, histogram series included."""
    page = Metrics().render(dict.fromkeys(ENGINE_VALUE_HELP, 0.0)).decode()  # both engines' values
    names = set()
    for kind_line in re.findall(r"^# TYPE (\S+) (\S+)$", page, flags=re.M):
        name, kind = kind_line
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def _expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs += [t["expr"] for panel in panels for t in panel.get("targets", [])]
    return exprs


def test_promtool_accepts_the_rules() -> None:
    out = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    out = subprocess.run(
        [_promtool(), "test", "rules", RULES_TESTS.name],
        capture_output=True,
        text=True,
        cwd=RULES_TESTS.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_and_dashboard_use_only_metrics_the_server_exposes() -> None:
    exposed = _exposed()
    used = {name for expr in _expressions() for name in METRIC_NAME.findall(expr)}
    assert used, "no metric found in the rules and dashboard"
    assert used <= exposed, sorted(used - exposed)


def test_every_live_metric_is_documented() -> None:
    documented = set(METRIC_NAME.findall(OPERATIONS.read_text()))
    families = {n for n in _exposed() if n.startswith("live_")}
    families = {n for n in families if not n.endswith(("_bucket", "_count", "_sum"))}
    assert families <= documented, sorted(families - documented)
