"""Alert pacing rules, event in, event out: one at a time, by value, capped backlog."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import AlertDone, Limits, parse_command
from protocol.errors import InvalidCommand
from protocol.pacing import AlertPacer, alert_value, is_alert


def gift(
    tx: str, coins: int, *, sender: str = "u1", count: int = 1, end: bool = True
) -> dict[str, Any]:
    return {
        "type": "gift",
        "tx": tx,
        "gift": {"id": "g", "coins": coins},
        "sender": {"id": sender, "username": sender},
        "count": count,
        "combo": {"id": tx, "count": count, "end": end},
        "diamonds": 0,
        "seq": 1,
        "ts": 1,
    }


def test_only_finished_gifts_are_alerts() -> None:
    assert is_alert(gift("t1", 5))
    assert not is_alert(gift("t1", 5, end=False))
    assert not is_alert({"type": "like", "count": 3})
    pacer = AlertPacer()
    pacer.offer([gift("t1", 5, end=False), {"type": "chat", "text": "hi"}])
    assert len(pacer) == 0
    assert pacer.next_alert(0.0) is None


def test_value_is_the_whole_streak() -> None:
    streak_end = gift("t1", 5, count=0)
    streak_end["combo"]["count"] = 7
    assert alert_value(streak_end) == 35
    streak_end["overlay"] = {"combo": {"coins": 40, "diamonds": 20}}
    assert alert_value(streak_end) == 40


def test_one_at_a_time_highest_value_first_ties_oldest_first() -> None:
    pacer = AlertPacer()
    pacer.offer([gift("small", 1), gift("big", 500), gift("mid", 20), gift("mid2", 20)])
    first = pacer.next_alert(0.0)
    assert first is not None and first["type"] == "alert" and first["kind"] == "gift"
    assert first["gift"]["tx"] == "big" and first["coins"] == 500
    assert pacer.next_alert(0.1) is None  # one on screen: nothing else goes out
    assert pacer.playing == first["id"]
    order = []
    while pacer.playing is not None:
        assert pacer.done(pacer.playing)
        alert = pacer.next_alert(0.2)
        if alert is not None:
            order.append(alert["gift"]["tx"])
    assert order == ["mid", "mid2", "small"]


def test_done_for_another_alert_changes_nothing() -> None:
    pacer = AlertPacer()
    pacer.offer([gift("a", 1), gift("b", 2)])
    shown = pacer.next_alert(0.0)
    assert shown is not None
    assert not pacer.done("a999")
    assert pacer.next_alert(0.0) is None
    assert pacer.done(shown["id"])
    assert not pacer.done(shown["id"])  # twice: already done
    assert pacer.next_alert(0.0) is not None


def test_timeout_sends_the_next_without_done() -> None:
    pacer = AlertPacer(timeout_seconds=5.0)
    pacer.offer([gift("a", 2), gift("b", 1)])
    first = pacer.next_alert(10.0)
    assert first is not None and pacer.deadline == 15.0
    assert pacer.next_alert(14.9) is None
    second = pacer.next_alert(15.0)
    assert second is not None and second["gift"]["tx"] == "b"
    assert not pacer.done(first["id"])  # too late: the next one is on screen
    assert pacer.playing == second["id"]


def test_overflow_folds_the_smallest_into_one_summary() -> None:
    pacer = AlertPacer(backlog=4)
    pacer.offer([gift(f"t{i}", coins, sender=f"u{i % 2}") for i, coins in enumerate([9, 1, 2, 8])])
    assert len(pacer) == 4
    pacer.offer([gift("t4", 3, sender="u9"), gift("t5", 100)])
    assert len(pacer) == 4  # capped: 3 biggest gifts and one summary
    alerts = []
    now = 0.0
    while (alert := pacer.next_alert(now)) is not None:
        alerts.append(alert)
        assert pacer.done(alert["id"])
    assert [a["gift"]["tx"] for a in alerts if a["kind"] == "gift"] == ["t5", "t0", "t3"]
    (summary,) = [a for a in alerts if a["kind"] == "summary"]
    assert summary["gifts"] == 3 and summary["coins"] == 1 + 2 + 3
    assert {s["id"] for s in summary["senders"]} == {"u1", "u0", "u9"}
    assert summary["more_senders"] == 0
    assert len({a["id"] for a in alerts}) == len(alerts) == 4


def test_a_later_overflow_joins_the_waiting_summary() -> None:
    pacer = AlertPacer(backlog=2)
    pacer.offer([gift("a", 5), gift("b", 1), gift("c", 2)])
    pacer.offer([gift("d", 1)])
    assert len(pacer) == 2
    first = pacer.next_alert(0.0)
    assert first is not None and first["kind"] == "gift" and first["gift"]["tx"] == "a"
    pacer.done(first["id"])
    summary = pacer.next_alert(0.0)
    assert summary is not None and summary["kind"] == "summary"
    assert summary["gifts"] == 3 and summary["coins"] == 4


def test_a_summary_names_at_most_ten_senders() -> None:
    pacer = AlertPacer(backlog=2)
    pacer.offer([gift("top", 1000)] + [gift(f"t{i}", 1, sender=f"u{i}") for i in range(15)])
    pacer.done((pacer.next_alert(0.0) or {})["id"])
    summary = pacer.next_alert(0.0)
    assert summary is not None and summary["kind"] == "summary"
    assert len(summary["senders"]) == 10 and summary["more_senders"] == 5
    assert summary["gifts"] == 15


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        AlertPacer(backlog=1)
    with pytest.raises(ValueError):
        AlertPacer(timeout_seconds=0)


def test_alert_done_command() -> None:
    limits = Limits()
    assert parse_command({"type": "alert_done", "id": "c1", "alert": "a3"}, limits=limits) == (
        AlertDone("c1", "a3")
    )
    for bad, message in (
        ({"type": "alert_done", "id": "c1"}, "missing field 'alert'"),
        ({"type": "alert_done", "id": "c1", "alert": 3}, "alert must be"),
        ({"type": "alert_done", "id": "c1", "alert": ""}, "alert must be"),
    ):
        with pytest.raises(InvalidCommand, match=message):
            parse_command(bad, limits=limits)


def test_the_summary_plays_after_every_single_gift() -> None:
    pacer = AlertPacer(backlog=3)
    pacer.offer([gift("a", 50), gift("b", 40), gift("c", 30), gift("d", 30)])
    kinds = []
    while (alert := pacer.next_alert(0.0)) is not None:
        kinds.append((alert["kind"], alert["coins"]))
        pacer.done(alert["id"])
        pacer.offer([gift("late", 5)] if len(kinds) == 1 else [])
    # the summary (60 coins) is worth more than any gift, yet waits for them all
    assert kinds == [("gift", 50), ("gift", 40), ("gift", 5), ("summary", 60)]
