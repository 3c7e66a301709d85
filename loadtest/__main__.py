"""``python -m loadtest`` (also ``live-loadtest``): crowds against a deployment, and
the side-by-side benchmarks.

    python -m loadtest crowd --url http://127.0.0.1:8000 --viewers 2000 --gifters 20 --gift-rate 50
    python -m loadtest storm --viewers 5000 --gifters 10 --gift-rate 20
    python -m loadtest whale --viewers 1000
    python -m loadtest sweep --viewers 5000 --start-rate 10 --p99-ms 250
    python -m loadtest bench fanout --out results/
    python -m loadtest baseline --port 8100

The secret that signs tokens comes from ``--secret`` or ``LIVE_SECRET``; the
token of the server's ``/metrics`` page (read for its SQLite writer's counters)
from ``--metrics-token`` or ``LIVE_METRICS_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

SCENARIOS = ("crowd", "storm", "whale", "sweep")

# Per-scenario defaults (anything given on the command line wins).
DEFAULTS: dict[str, dict[str, object]] = {
    "crowd": {},
    "storm": {"viewers": 1000, "gifters": 4, "gift_rate": 10.0, "duration": 0.0},
    "whale": {"gifters": 3, "gift_rate": 9.0, "gift": "confetti", "count": 99},
    "sweep": {"viewers": 1000, "gifters": 20, "gift_rate": 0.0},
}


def _cpus(text: str | None) -> list[int] | None:
    if not text:
        return None
    cpus: list[int] = []
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            cpus.extend(range(int(low), int(high) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("LIVE_URL", "http://127.0.0.1:8000"))
    p.add_argument("--secret", default=None, help="token secret (default: $LIVE_SECRET)")
    p.add_argument("--viewers", type=int)
    p.add_argument("--rooms", type=int)
    p.add_argument("--gifters", type=int)
    p.add_argument("--gift-rate", type=float, help="gifts per second, all gifters together")
    p.add_argument("--gift", help="gift id from the catalog (default rose)")
    p.add_argument("--count", type=int, help="gifts per send_gift (a combo)")
    p.add_argument("--like-rate", type=float, help="likes per second, all gifters together")
    p.add_argument("--chat-rate", type=float, help="chat lines per second, all gifters together")
    p.add_argument("--duration", type=float, help="measured seconds")
    p.add_argument("--warmup", type=float)
    p.add_argument("--workers", type=int, help="generator processes (default: by connections)")
    p.add_argument("--sources", type=int, help="loopback source addresses 127.0.0.x to use")
    p.add_argument("--probe-every", type=int, help="every n-th viewer times gifts (default 20)")
    p.add_argument("--msgpack-every", type=int, help="every n-th viewer speaks MessagePack")
    p.add_argument("--connect-concurrency", type=int)
    p.add_argument("--creator-share", type=int, help="the server's creator share, percent")
    p.add_argument("--one-at-a-time", action="store_true", default=None)
    p.add_argument("--no-money", action="store_true", help="skip setup and the money check")
    p.add_argument("--server-pid", type=int, help="a local server's pid, to read its RSS")
    p.add_argument(
        "--metrics-token",
        default=os.environ.get("LIVE_METRICS_TOKEN", ""),
        help="bearer token of the server's /metrics page (default: $LIVE_METRICS_TOKEN)",
    )
    p.add_argument("--cpus", help="CPUs for the generator, e.g. 1 or 2-3")
    p.add_argument("--start-rate", type=float, help="sweep: first gift rate")
    p.add_argument("--factor", type=float, help="sweep: rate multiplier per step")
    p.add_argument("--max-rate", type=float, help="sweep: last gift rate")
    p.add_argument("--step-seconds", type=float, help="sweep: seconds per step")
    p.add_argument("--p99-ms", type=float, dest="p99_bound_ms", help="sweep: latency bound")
    p.add_argument(
        "--bound-on",
        choices=("screen", "ack"),
        help="sweep: bound the gift-to-screen p99 (default) or the ack p99",
    )
    p.add_argument(
        "--overload-factor", type=float, help="sweep: go on until p99 > this x the bound"
    )
    p.add_argument("--storm-settle", type=float, help="storm: seconds around the storm")
    p.add_argument("--out", type=Path, help="write report.json, report.txt, report.png here")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="live-loadtest", description="Crowd simulator and benchmarks for live rooms."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SCENARIOS:
        p = sub.add_parser(name, help=f"run the {name} scenario")
        _common(p)
    b = sub.add_parser("bench", help="start the servers here and compare with the baseline")
    b.add_argument(
        "targets", nargs="*", default=["all"], help="fanout, rate200, onegift, ..., crowd"
    )
    b.add_argument("--engine", choices=("embedded", "scaled"), default="embedded")
    b.add_argument("--out", type=Path)
    b.add_argument("--scale", type=float, default=1.0, help="multiply the crowd sizes")
    b.add_argument("--duration", type=float, help="seconds per measurement")
    b.add_argument("--keep", action="store_true", help="keep the servers' data directories")
    b.add_argument(
        "--redis-replicas",
        type=int,
        default=0,
        help="scaled engine: Redis replicas, money answered once all have it (WAIT)",
    )
    b.add_argument(
        "--redis-cluster",
        type=int,
        default=0,
        metavar="N",
        help="scaled engine: a Redis Cluster of N primaries (each with --redis-replicas "
        "replicas) instead of one Redis",
    )
    b.add_argument(
        "--workers",
        type=int,
        default=1,
        help="live serve --workers N (scaled engine); the server gets the first N CPUs",
    )
    # Parsed by loadtest.chaos itself (see main); listed here for --help.
    sub.add_parser("chaos", help="mixed load with faults on a schedule, replayable by --seed")
    s = sub.add_parser("baseline", help="run the baseline server (python-websockets broadcast)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8100)
    return parser


def options_from(args: argparse.Namespace) -> object:
    from loadtest.runner import Options

    values: dict[str, object] = dict(DEFAULTS[args.command])
    for name in Options.__dataclass_fields__:
        if name in ("scenario", "secret", "money", "cpus"):
            continue
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    secret = args.secret if args.secret is not None else os.environ.get("LIVE_SECRET", "")
    return Options(
        scenario=args.command,
        secret=secret,
        money=not args.no_money,
        cpus=_cpus(args.cpus),
        **values,  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chaos"]:
        from loadtest.chaos import main as chaos_main

        return chaos_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "baseline":
        from loadtest.baseline import main as baseline_main

        baseline_main(args.host, args.port)
        return 0
    if args.command == "bench":
        from loadtest.bench import BenchSettings, run_bench

        settings = BenchSettings(
            engine=args.engine,
            out=args.out,
            scale=args.scale,
            duration=args.duration,
            keep=args.keep,
            workers=args.workers,
            redis_replicas=args.redis_replicas,
            redis_cluster=args.redis_cluster,
        )
        return run_bench(args.targets, settings)
    from loadtest.report import render, write
    from loadtest.runner import Options, Run

    try:
        options = options_from(args)
        assert isinstance(options, Options)
        run = Run(options)
    except ValueError as exc:
        print(f"live-loadtest: {exc}", file=sys.stderr)
        return 2
    report = run.execute()
    print(render(report))
    if args.out:
        for path in write(report, args.out):
            print(f"wrote {path}", file=sys.stderr)
    money = report.get("money")
    failed = report["connections"]["opened"] == 0 or (money is not None and not money["ok"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
