"""What a gift keeps under its idempotency key on the embedded engine: the receipt's
every field but ``replayed``, in order, as ``receipt_body`` spells any receipt; a
resend replays exactly that. Real SQLite files in ``tmp_path``."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import orjson

from store.domain.catalog import Catalog
from store.domain.models import GiftRequest, Profile, PurchaseRequest
from store.embedded.engine import DATABASE_FILE, open_embedded_engine
from store.embedded.journal import receipt_body
from store.roles import EngineConfig

BOB = Profile(id="bob", username="bob", adult=True, roles=frozenset({"creator"}))
ANN = Profile(id="ann", username="ann", adult=True)


async def test_the_key_keeps_the_receipt_body_and_a_resend_replays_it(tmp_path: Path) -> None:
    engine = await open_embedded_engine(EngineConfig(data_dir=tmp_path), catalog=Catalog())
    try:
        package = engine.catalog.package("us_70")
        rose = engine.catalog.gift("rose")
        assert package is not None and rose is not None
        await engine.wallet.purchase(PurchaseRequest(user=ANN, package=package, payment_id="p1"))
        await engine.rooms.go_live(room_id="room-bob", creator=BOB, title="hello")
        request = GiftRequest(ANN, "room-bob", rose, 3, "gift-1")
        first = await engine.wallet.send_gift(request)
        again = await engine.wallet.send_gift(request)
    finally:
        await engine.close()
    conn = sqlite3.connect(tmp_path / DATABASE_FILE)
    try:
        (stored,) = conn.execute(
            "SELECT result FROM idempotency WHERE scope = ? AND key = ?", ("gift:ann", "gift-1")
        ).fetchone()
    finally:
        conn.close()
    assert list(orjson.loads(stored).items()) == list(receipt_body(first).items())
    assert first.coins == 3 * rose.coins and not first.replayed
    assert again == dataclasses.replace(first, replayed=True)
