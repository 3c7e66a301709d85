"""``live serve --demo``: a live room and a funded viewer, ready in a minute."""

from __future__ import annotations

from live.actions.node import Actions
from live.auth import issue_token
from store.domain.models import Profile

DEMO_ROOM = "demo"
DEMO_TTL = 7 * 86_400


async def seed_demo(actions: Actions) -> str:
    """Create (idempotently) the demo creator's live room and two funded viewers;
    return the text to print: tokens and ready-to-use URLs."""
    settings = actions.settings
    creator = Profile(
        id="demo_creator",
        username="demo_creator",
        display_name="Demo Creator",
        adult=True,
        roles=frozenset({"creator"}),
    )
    await actions.rooms.go_live(room_id=DEMO_ROOM, creator=creator, title="Demo stream")
    viewers = [
        Profile(id="alice", username="alice", display_name="Alice", adult=True),
        Profile(id="bob", username="bob", display_name="Bob", adult=True),
    ]
    funded = "sandbox" in actions.money.payments
    if funded:  # through the sandbox provider, like any purchase (once per viewer)
        for viewer in viewers:
            await actions.money.purchase(
                user=viewer,
                package_id="us_7000",
                key="demo-seed",
                provider="sandbox",
                method="sandbox_card",
            )
    room = await actions.rooms.for_handshake(DEMO_ROOM)
    base = settings.base_url
    ws_base = base.replace("http", "ws", 1)

    def token(p: Profile) -> str:
        return issue_token(
            secret=settings.secret,
            user_id=p.id,
            username=p.username,
            display_name=p.display_name,
            adult=p.adult,
            roles=p.roles,
            ttl_seconds=DEMO_TTL,
        )

    lines = [
        "",
        "Demo room is live." + ("" if funded else " (sandbox payments off: viewers unfunded)"),
        f"  creator token : {token(creator)}",
    ]
    for viewer in viewers:
        lines.append(f"  {viewer.id:<13} : {token(viewer)}")
    lines += [
        f"  watch page    : {base}/watch/{DEMO_ROOM}?token={token(viewers[0])}",
        f"  (as bob)      : {base}/watch/{DEMO_ROOM}?token={token(viewers[1])}",
    ]
    if room is not None:
        lines.append(f"  overlay (OBS) : {base}/overlay/{DEMO_ROOM}?key={room.overlay_key}")
    lines += [
        f"  room          : {base}/v1/rooms/{DEMO_ROOM}",
        f"  watch (ws)    : {ws_base}/v1/rooms/{DEMO_ROOM}/live",
        f"  as alice (ws) : {ws_base}/v1/rooms/{DEMO_ROOM}/live?access_token={token(viewers[0])}",
    ]
    if room is not None:
        lines.append(
            f"  overlay (ws)  : {ws_base}/v1/rooms/{DEMO_ROOM}/live?overlay_key={room.overlay_key}"
        )
    lines += [
        "  send a gift   : curl -X POST -H 'Authorization: Bearer <alice token>' "
        f"-H 'Idempotency-Key: g1' -d '{{\"gift\":\"rose\"}}' {base}/v1/rooms/{DEMO_ROOM}/gifts",
        "",
    ]
    return "\n".join(lines)
