"""The ``live`` command: serve, token, migrate, ledger, audit, repair, catalog,
subscriptions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from live import catalog_cli
from live.logs import configure_logging
from live.metrics import MULTIPROCESS_ENV
from live.settings import Settings, SettingsError
from live.subscriptions import cli as subscriptions_cli


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    """The settings of a command (every one runs on a Redis Cluster too)."""
    overrides: dict[str, object] = {k: v for k, v in extra.items() if v is not None}
    for name in ("host", "port", "data_dir", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = Path(value) if name == "data_dir" else value
    settings = Settings.from_env(None, **overrides)
    _check_urls(settings)
    configure_logging(settings)
    return settings


_URL_SCHEMES = {
    "LIVE_REDIS_URL": ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://"),
    "LIVE_DATABASE_URL": ("postgresql://", "postgres://"),
}


def _check_urls(settings: Settings) -> None:
    """A URL the client library would reject with a traceback gets one clear line."""
    for name, url in (
        ("LIVE_REDIS_URL", settings.redis_url),
        ("LIVE_DATABASE_URL", settings.database_url),
    ):
        if url and not url.startswith(_URL_SCHEMES[name]):
            expected = " or ".join(_URL_SCHEMES[name])
            raise SettingsError(f"{name} must start with {expected}")
    from store.scaled.cluster import ClusterAddress, is_cluster_url

    if settings.redis_url and is_cluster_url(settings.redis_url):
        try:
            ClusterAddress.parse(settings.redis_url)
        except ValueError as exc:
            raise SettingsError(f"LIVE_REDIS_URL: {exc}") from None


def _operational_error(exc: BaseException) -> str | None:
    """The one line an operator needs for an expected failure (a backend down or
    refusing us, a missing file), or None for anything else: a bug keeps its
    traceback."""
    if isinstance(exc, SettingsError):
        return f"configuration error: {exc}"
    from store.errors import StoreError

    if isinstance(exc, StoreError):
        return exc.message
    if isinstance(exc, OSError):
        return str(exc)
    if "asyncpg" in sys.modules:
        import asyncpg

        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return f"postgresql: {exc} (live migrate creates it)"
        if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate[:2] in _PG_SETUP_CLASSES:
            return f"postgresql: {exc}"
    if "redis" in sys.modules:
        import redis.exceptions

        if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return f"redis unavailable: {exc}"
        if isinstance(exc, redis.exceptions.ResponseError) and "AUTH" in str(exc).upper():
            return f"redis: {exc}"
    return None


_PG_SETUP_CLASSES = frozenset({"08", "28", "3D", "42", "57", "53"})
"""SQLSTATE classes of a server we can't use as configured: connection, auth,
missing database, privilege (42501 is in 42), shutting down, out of resources."""


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args, demo=True if args.demo else None)
    shared_metrics = ""
    if settings.scaled:
        # Reach Redis and PostgreSQL (and migrate) once before uvicorn starts, so a
        # backend that is down is one clear line rather than a startup traceback
        # from every worker.
        asyncio.run(_open_and_close(settings))
    if settings.workers > 1:
        # Workers are separate processes: they read the same settings from the
        # environment (the secret included, so tokens verify on every worker).
        os.environ.update(_env_of(settings))
        # One metrics view of all workers: they share their values through files
        # in a fresh directory, removed when the server stops.
        os.environ[MULTIPROCESS_ENV] = shared_metrics = tempfile.mkdtemp(prefix="live-metrics-")
        app: object = "live.app:app_from_env"
        factory = True
    else:
        from live.app import create_app

        app = create_app(settings)
        factory = False
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal
    # with the previous handlers restored: make that a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    try:
        _run_uvicorn(uvicorn, app, factory=factory, settings=settings)
    finally:
        if shared_metrics:
            shutil.rmtree(shared_metrics, ignore_errors=True)
    return 0


def _run_uvicorn(uvicorn: Any, app: object, *, factory: bool, settings: Settings) -> None:
    from live.logs import known_secrets, uvicorn_log_config

    http_protocol, ws_protocol = _live_protocols()
    uvicorn.run(
        app,
        factory=factory,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if settings.workers > 1 else None,
        loop="uvloop" if _uvloop_available() else "asyncio",
        http=http_protocol,
        ws=ws_protocol,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_timeout or None,
        ws_per_message_deflate=False,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(
            settings.log_level, log_format=settings.log_format, secrets=known_secrets(settings)
        ),
        timeout_graceful_shutdown=settings.shutdown_timeout,
        timeout_worker_healthcheck=settings.worker_healthcheck_timeout,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


async def _open_and_close(settings: Settings) -> None:
    from store.engine import open_engine

    engine = await open_engine(settings.engine_config())
    await engine.close()


def _live_protocols() -> tuple[type[asyncio.Protocol] | str, type[asyncio.Protocol] | str]:
    """The HTTP and WebSocket protocol classes of ``live.realtime.uvicorn_glue``, or
    uvicorn's own if this uvicorn lacks what they build on (its [standard] extras)."""
    try:
        from live.realtime.uvicorn_glue import LiveHttpProtocol, LiveWebSocketProtocol
    except ImportError:  # pragma: no cover - depends on the installed uvicorn
        return "auto", "auto"
    return LiveHttpProtocol, LiveWebSocketProtocol


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _env_of(settings: Settings) -> dict[str, str]:
    env = {
        "LIVE_SECRET": settings.secret,
        "LIVE_DATA_DIR": str(settings.data_dir),
        "LIVE_HOST": settings.host,
        "LIVE_PORT": str(settings.port),
    }
    if settings.demo:
        env["LIVE_DEMO"] = "1"
    return env


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token: HS256 with the server's secret, or signed with ``--private-key``
    (RS256/ES256/EdDSA, from the key) for a server that verifies public keys."""
    from live.identity.minting import issue_token, load_private_key

    settings = _settings(args)
    roles = [r for r, on in (("creator", args.creator), ("admin", args.admin)) if on]
    private_key = None
    if args.private_key:
        private_key = load_private_key(Path(args.private_key).read_bytes())
    print(
        issue_token(
            secret=settings.secret,
            private_key=private_key,
            algorithm=args.alg,
            key_id=args.kid,
            user_id=args.user,
            username=args.name or args.user,
            display_name=args.display_name,
            avatar=args.avatar or "",
            adult=args.adult,
            roles=roles,
            ttl_seconds=args.ttl,
            issuer=settings.jwt_issuer,
            audience=settings.token_audiences()[0] if settings.token_audiences() else "",
        )
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import orjson

    from store.engine import open_engine

    settings = _settings(args)

    async def run() -> int:
        engine = await open_engine(settings.engine_config())
        try:
            report = await engine.ledger.audit()
        finally:
            await engine.close()
        print(orjson.dumps(report.public(), option=orjson.OPT_INDENT_2).decode())
        return 0 if report.ok else 1

    return asyncio.run(run())


def cmd_repair(args: argparse.Namespace) -> int:
    """Put Redis back in line with the ledger after Redis lost writes (scaled engine)."""
    import orjson

    from store.engine import open_engine

    settings = _settings(args)

    async def audit() -> dict[str, object]:
        engine = await open_engine(settings.engine_config())
        try:
            report = await engine.ledger.audit()
        finally:
            await engine.close()
        public: dict[str, object] = report.public()
        return public

    async def run() -> int:
        if not settings.redis_url or not settings.database_url:
            found = await audit()
            print(orjson.dumps({"audit": found}, option=orjson.OPT_INDENT_2).decode())
            if not found["ok"]:
                print(
                    "the embedded engine writes balances and ledger in one SQLite transaction:"
                    " a difference means a damaged file; restore it from a backup",
                    file=sys.stderr,
                )
            return 0 if found["ok"] else 1
        from store.scaled.repair import RepairError, repair_scaled

        try:
            report = await repair_scaled(
                redis_url=settings.redis_url,
                database_url=settings.database_url,
                window_seconds=args.window,
                dry_run=args.dry_run,
            )
        except RepairError as exc:
            print(f"live repair: {exc}", file=sys.stderr)
            return 2
        result: dict[str, object] = {"repair": report.public()}
        ok = True
        if not args.dry_run:
            result["audit"] = found = await audit()
            ok = bool(found["ok"])
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0 if ok else 1

    return asyncio.run(run())


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.database_url:
        print("LIVE_DATABASE_URL is not set: the embedded engine migrates itself", file=sys.stderr)
        return 0
    from store.scaled.engine import migrate
    from store.scaled.postgres import create_database_if_missing

    async def run(database_url: str) -> list[str]:
        created = await create_database_if_missing(database_url)
        if created is not None:
            print(f'created database "{created}"')
        return await migrate(database_url)

    applied = asyncio.run(run(settings.database_url))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.redis_url or not settings.database_url:
        print(
            "live ledger needs LIVE_REDIS_URL and LIVE_DATABASE_URL (scaled engine)",
            file=sys.stderr,
        )
        return 2
    from store.scaled.engine import run_ledger_worker

    redis_url, database_url = settings.redis_url, settings.database_url

    async def run() -> None:
        from live.metrics import LedgerMetrics, serve_metrics

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        metrics = LedgerMetrics()
        listener = None
        if settings.ledger_metrics_port:
            listener = await serve_metrics(
                metrics.render,
                host=settings.host,
                port=settings.ledger_metrics_port,
                token=settings.metrics_token,
            )
            logging.getLogger("live.ledger").info(
                "metrics on http://%s:%d/metrics", settings.host, settings.ledger_metrics_port
            )
        try:
            await run_ledger_worker(
                redis_url=redis_url,
                database_url=database_url,
                stop=stop,
                consumer=args.consumer or f"ledger-{os.getpid()}",
                observer=metrics.store,
            )
        finally:
            if listener is not None:
                listener.close()
                await listener.wait_closed()

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="live", description="Livestream gifting server.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (embedded engine by default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument("--workers", type=int, help="processes sharing the port (scaled engine)")
    serve.add_argument(
        "--demo", action="store_true", help="seed a live demo room and funded viewers, print links"
    )
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="mint a development access token")
    token.add_argument("user")
    token.add_argument("--name")
    token.add_argument("--display-name")
    token.add_argument("--avatar")
    token.add_argument("--adult", action="store_true")
    token.add_argument("--creator", action="store_true")
    token.add_argument("--admin", action="store_true")
    token.add_argument("--ttl", type=int, default=86_400, help="seconds (default one day)")
    token.add_argument("--data-dir")
    token.add_argument(
        "--private-key", help="PEM private key (RSA, EC, Ed25519): sign with it, not the secret"
    )
    token.add_argument("--alg", help="signing algorithm (default: HS256, or the key's usual one)")
    token.add_argument("--kid", help="key id put in the token's header (the JWKS key's kid)")
    token.set_defaults(func=cmd_token)

    for name, func, help_text in (
        ("audit", cmd_audit, "compare hot balances with the ledger; exit 1 on any difference"),
        ("migrate", cmd_migrate, "apply PostgreSQL ledger migrations"),
        ("ledger", cmd_ledger, "drain the ledger outbox into PostgreSQL (scaled engine)"),
        ("repair", cmd_repair, "rebuild Redis balances and idempotency records from the ledger"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir")
        if name == "ledger":
            p.add_argument("--consumer")
        if name == "repair":
            p.add_argument("--dry-run", action="store_true", help="report, change nothing")
            p.add_argument(
                "--window",
                type=float,
                default=3_600.0,
                help="seconds of recent gifts and purchases whose records to check (default 3600)",
            )
        p.set_defaults(func=func)
    catalog_cli.add_parser(sub, _settings)
    subscriptions_cli.add_parser(sub, _settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except Exception as exc:
        line = _operational_error(exc)
        if line is None:
            raise
        words = (
            "live",
            args.command,
            getattr(args, "catalog_command", None) or getattr(args, "subscriptions_command", None),
        )
        command = " ".join(word for word in words if word)
        print(f"{command}: {' '.join(line.split())}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
