"""``live catalog export`` and ``live catalog import``: the catalog as code.

Both open the configured engine (the same settings as ``live serve``), so they
work on either engine while servers run: a running server serves an import
within ``LIVE_CATALOG_POLL_SECONDS``. An import is validated whole before
anything is written, then applied at once; entries the file leaves out stay as
they are (retire one with ``retired = true``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from pathlib import Path
from typing import Any

import orjson
import tomli_w

from live.settings import Settings
from store.domain.catalog_entries import catalog_document
from store.errors import StoreError


def read_document(path: Path) -> dict[str, Any]:
    """A catalog file: TOML (``.toml``) or JSON (anything else)."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".toml":
        return tomllib.loads(raw.decode())
    document = orjson.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("a catalog file holds one object with gifts and packages lists")
    return document


def write_document(document: dict[str, Any], *, toml: bool) -> bytes:
    if toml:
        return tomli_w.dumps(document).encode()
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from store.engine import open_engine

    async def run() -> dict[str, Any]:
        engine = await open_engine(settings.engine_config(), catalog=settings.catalog())
        try:
            return catalog_document(await engine.catalogs.refresh())
        finally:
            await engine.close()

    output = Path(args.output) if args.output else None
    toml = args.format == "toml" or (
        args.format is None and output is not None and output.suffix.lower() == ".toml"
    )
    data = write_document(asyncio.run(run()), toml=toml)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from store.engine import open_engine

    try:
        document = read_document(Path(args.file))
    except (OSError, ValueError) as exc:  # tomllib and orjson errors are ValueErrors
        print(f"can't read {args.file}: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        engine = await open_engine(settings.engine_config(), catalog=settings.catalog())
        try:
            changes = await engine.catalogs.import_entries(document, dry_run=args.dry_run)
        except StoreError as exc:
            print(f"nothing imported: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await engine.close()
        verb = "would change" if args.dry_run else "changed"
        for label, names in (
            ("added", changes.added),
            ("changed", changes.changed),
        ):
            for name in names:
                print(f"{label:8} {name}")
        total = len(changes.added) + len(changes.changed)
        unchanged = len(changes.unchanged)
        print(f"{verb} {total} entries ({unchanged} unchanged); version {changes.version}")
        return 0

    return asyncio.run(run())


def add_parser(sub: Any, settings_of: Any) -> None:
    """``live catalog export|import`` on the ``live`` command's subparsers."""
    catalog = sub.add_parser("catalog", help="export or import the catalog: gifts, packages, items")
    actions = catalog.add_subparsers(dest="catalog_command", required=True)
    export = actions.add_parser("export", help="write the whole catalog (retired entries too)")
    export.add_argument(
        "--format", choices=("json", "toml"), help="default: by --output, else json"
    )
    export.add_argument("--output", "-o", help="a file (default: standard output)")
    imports = actions.add_parser("import", help="add or replace the entries of a TOML or JSON file")
    imports.add_argument("file")
    imports.add_argument(
        "--dry-run", action="store_true", help="print what would change, change nothing"
    )
    for p, command in ((export, cmd_export), (imports, cmd_import)):
        p.add_argument("--data-dir")
        p.set_defaults(func=lambda args, command=command: command(args, settings_of(args)))
