"""Admins manage the catalog: list everything (retired entries too), create,
update and retire gifts and coin packages.

A change is served by every node within a second and announced to connected
clients (a ``catalog`` event). ``If-Match: <version>`` makes a change conditional
on the catalog's version (``conflict`` otherwise), so two admins never overwrite
each other unseen. A bad field is ``bad_request`` naming it in ``error.field``.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.errors import LiveError
from live.http.common import actions_of, admin_of, endpoint, json_body
from live.json import json_response
from store.catalogs import Catalogs
from store.domain.catalog import Catalog
from store.domain.catalog_entries import KINDS, EntryError, catalog_document

KIND_BY_PLURAL: Final = {kind.plural: kind for kind in KINDS.values()}


def _catalogs(request: Request) -> Catalogs:
    admin_of(request)
    return actions_of(request).engine.catalogs


def _expected_version(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    raw = raw.strip().strip('"')
    if not raw.isdigit() or len(raw) > 18:
        raise LiveError("bad_request", "If-Match must be a catalog version (an integer)")
    return int(raw)


def _entry_response(request: Request, catalog: Catalog, entry_id: str, status: int) -> Response:
    kind = KIND_BY_PLURAL[request.path_params["plural"]]
    entry = catalog.entries(kind.name)[entry_id]
    return json_response({"version": catalog.version, kind.name: kind.write(entry)}, status=status)


def _field_error(exc: EntryError) -> Response:
    return json_response(
        {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}, status=400
    )


def _kind_name(request: Request) -> str:
    kind = KIND_BY_PLURAL.get(request.path_params["plural"])
    if kind is None:
        raise LiveError("not_found", f"the catalog has {', '.join(KIND_BY_PLURAL)}")
    return kind.name


@endpoint
async def get_catalog(request: Request) -> Response:
    catalogs = _catalogs(request)
    return json_response(catalog_document(await catalogs.refresh()))


@endpoint
async def create_entry(request: Request) -> Response:
    catalogs = _catalogs(request)
    kind = _kind_name(request)
    body = await json_body(request)
    try:
        catalog = await catalogs.create(kind, body, expected_version=_expected_version(request))
    except EntryError as exc:
        return _field_error(exc)
    return _entry_response(request, catalog, str(body["id"]), 201)


@endpoint
async def update_entry(request: Request) -> Response:
    catalogs = _catalogs(request)
    kind = _kind_name(request)
    entry_id = request.path_params["entry_id"]
    body = await json_body(request)
    try:
        catalog = await catalogs.update(
            kind, entry_id, body, expected_version=_expected_version(request)
        )
    except EntryError as exc:
        return _field_error(exc)
    return _entry_response(request, catalog, entry_id, 200)


@endpoint
async def retire_entry(request: Request) -> Response:
    catalogs = _catalogs(request)
    kind = _kind_name(request)
    entry_id = request.path_params["entry_id"]
    catalog = await catalogs.retire(kind, entry_id, expected_version=_expected_version(request))
    return _entry_response(request, catalog, entry_id, 200)


routes = [
    Route("/v1/admin/catalog", get_catalog, methods=["GET"]),
    Route("/v1/admin/catalog/{plural}", create_entry, methods=["POST"]),
    Route("/v1/admin/catalog/{plural}/{entry_id}", update_entry, methods=["PATCH"]),
    Route("/v1/admin/catalog/{plural}/{entry_id}/retire", retire_entry, methods=["POST"]),
]
