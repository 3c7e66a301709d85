// The client against a real server: `live serve` on a free port (test/server.js).
// Run: `node --test test/` in clients/js (`make test` runs it through pytest).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { LiveError, LiveRoom, tokenExpiry } from "../src/index.js";
import { LiveServer } from "../testing/server.js";

/** A ws WebSocket that counts the connections it opens. */
function countingSocket() {
  const opened = { count: 0 };
  class Counting extends WebSocket {
    /** @param {string} url @param {string[]} protocols */
    constructor(url, protocols) {
      super(url, protocols);
      opened.count += 1;
    }
  }
  return { Counting, opened };
}

/**
 * Resolves with the first argument `room` emits as `type` that matches.
 * @param {LiveRoom} room @param {string} type @param {(value: any) => boolean} [match]
 */
function next(room, type, match = () => true, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = room.on(type, (/** @type {any} */ value) => {
      if (!match(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

const FAST = { firstDelayMs: 50, maxDelayMs: 400 };

/** @param {LiveServer} server @param {Partial<import("../src/index.js").LiveRoomOptions>} options */
function room(server, options) {
  return new LiveRoom({ url: server.url, roomId: "", WebSocket, ...FAST, ...options });
}

describe("a live room on a real server", () => {
  const server = new LiveServer();
  before(() => server.start());
  after(() => server.dispose());

  test("a guest sees a user's gift, acknowledged once, with the sender's name", async () => {
    const { room: roomId } = await server.liveRoom();
    const guest = room(server, { roomId });
    const alice = room(server, { roomId, token: await server.viewerWithCoins("alice") });
    const welcome = await guest.connect();
    assert.equal(welcome.you, null);
    assert.equal((await alice.connect()).you?.username, "alice");
    assert.equal(await alice.connect(), alice.welcome); // connected already: the same welcome

    const seen = next(guest, "gift");
    const ack = await alice.sendGift("rose", { count: 3, coins: 1 });
    assert.equal(ack.replayed, false);
    assert.equal(typeof ack.tx, "string");
    const gift = await seen;
    assert.equal(gift.tx, ack.tx);
    assert.equal(gift.sender.display_name, "Alice");
    assert.equal(gift.count, 3);

    const chat = await alice.chat("hello");
    assert.equal(chat.type, "ack");
    const like = await alice.like(4);
    assert.ok(like.total >= 4);
    guest.close();
    alice.close();
  });

  test("refusals reject with a LiveError carrying the protocol's code", async () => {
    const { room: roomId } = await server.liveRoom();
    const broke = room(server, { roomId, token: server.token("broke") });
    const rich = room(server, { roomId, token: await server.viewerWithCoins() });
    const guest = room(server, { roomId });
    await Promise.all([broke.connect(), rich.connect(), guest.connect()]);

    /** @param {Promise<unknown>} promise */
    const code = (promise) =>
      promise.then(
        () => "ok",
        (error) => {
          assert.ok(error instanceof LiveError);
          return error.code;
        },
      );
    assert.equal(await code(broke.sendGift("rose")), "insufficient_funds");
    assert.equal(await code(rich.sendGift("rose", { coins: 2 })), "price_changed");
    assert.equal(await code(rich.sendGift("no-such-gift")), "not_found");
    assert.equal(await code(guest.like()), "unauthorized");
    assert.equal(await code(rich.send("like", { count: "5" })), "bad_request");
    const price = await rich.sendGift("rose", { coins: 1, id: "g-same" });
    const error = await rich.sendGift("rose", { count: 2, id: "g-same" }).catch((e) => e);
    assert.equal(error.code, "conflict");
    assert.equal(error.id, "g-same");
    assert.equal(price.replayed, false);
    for (const r of [broke, rich, guest]) r.close();
  });

  test("a gift whose ack was lost in a restart is sent again with its id and charged once", async () => {
    const { room: roomId } = await server.liveRoom();
    const token = await server.viewerWithCoins();
    const before = (await server.api("GET", "/v1/me/wallet", token)).coins;

    // The first connection never hands the gift's ack to the client: as if the
    // server charged it and went down before the reply arrived.
    let dropAcks = true;
    class LossySocket extends WebSocket {
      /** @param {string} url @param {string[]} protocols */
      constructor(url, protocols) {
        super(url, protocols);
        const lossy = dropAcks;
        const original = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage");
        Object.defineProperty(this, "onmessage", {
          set: (/** @type {(m: any) => void} */ handler) =>
            original?.set?.call(this, (/** @type {any} */ message) => {
              if (lossy && String(message.data).includes('"type":"ack"')) return;
              handler(message);
            }),
        });
      }
    }
    const watcher = room(server, { roomId });
    const sender = room(server, { roomId, token, WebSocket: LossySocket });
    await watcher.connect();
    await sender.connect();
    /** @type {any[]} */
    const gifts = [];
    watcher.on("gift", (/** @type {any} */ e) => gifts.push(e));
    const charged = next(watcher, "gift");
    const acked = sender.sendGift("rose", { count: 2 });
    const first = await charged;
    dropAcks = false; // the next connections are honest

    const resumed = next(watcher, "welcome", () => true, 30_000);
    await server.restart(); // closes every viewer with 1012
    const ack = await acked;
    assert.equal(ack.replayed, true); // the server had charged it: not again
    assert.equal(ack.tx, first.tx);
    assert.equal((await server.api("GET", "/v1/me/wallet", token)).coins, before - 2);
    await resumed;
    await sender.ping();
    assert.deepEqual(
      gifts.filter((g) => g.tx === first.tx && g.count > 0).map((g) => g.count),
      [2],
    );
    watcher.close();
    sender.close();
  });

  test("a gift sent while the server is down is sent once it is back", async () => {
    const { room: roomId } = await server.liveRoom();
    const token = await server.viewerWithCoins();
    const sender = room(server, { roomId, token, random: () => 0.5 }); // no jitter: delays exact
    await sender.connect();
    /** @type {number[]} */
    const waits = [];
    sender.on("status", (/** @type {string} */ s, /** @type {any} */ d) => s === "reconnecting" && d && waits.push(d.wait));
    const retried = next(sender, "status", () => waits.length >= 5);
    await server.stop();
    await retried; // 1012, then refused connections (1006) while the server is down
    const acked = sender.sendGift("rose");
    await server.start();
    const ack = await acked;
    assert.equal(ack.replayed, false);
    assert.equal(sender.status, "live");
    assert.deepEqual(waits.slice(0, 5), [50, 100, 200, 400, 400]); // doubling, capped
    sender.close();
  });

  test("a reconnect resumes with since: every seq once, in order", async () => {
    const { room: roomId } = await server.liveRoom();
    const liker = room(server, { roomId, token: server.token("liker") });
    const watcher = room(server, { roomId });
    await liker.connect();
    const first = await watcher.connect();
    /** @type {number[]} */
    const seqs = [];
    /** @type {boolean[]} */
    const resumes = [];
    watcher.on("event", (/** @type {any} */ e) => seqs.push(e.seq));
    watcher.on("welcome", (/** @type {any} */ _w, /** @type {any} */ info) => resumes.push(info.resumed));
    const last = next(watcher, "like", (e) => e.total === 6);
    for (let i = 0; i < 3; i += 1) await liker.like();
    watcher.reconnect();
    for (let i = 0; i < 3; i += 1) await liker.like();
    await last;
    assert.deepEqual(resumes, [true]);
    assert.ok(seqs.length >= 6);
    assert.equal(seqs[0], first.seq + 1);
    seqs.forEach((seq, i) => assert.equal(seq, first.seq + 1 + i));
    liker.close();
    watcher.close();
  });

  test("after the stream ends (4010) the room doesn't come back and commands fail at once", async () => {
    const { room: roomId, creator } = await server.liveRoom();
    const { Counting, opened } = countingSocket();
    const viewer = room(server, { roomId, token: await server.viewerWithCoins(), WebSocket: Counting });
    await viewer.connect();
    const ended = next(viewer, "room_ended");
    const closed = next(viewer, "closed");
    await server.api("POST", `/v1/rooms/${roomId}/end`, creator);
    await ended;
    assert.equal((await closed).code, 4010);
    const error = await viewer.sendGift("rose").catch((e) => e);
    assert.equal(error.code, "room_not_live");
    await new Promise((r) => setTimeout(r, 500)); // longer than the first backoffs
    assert.equal(opened.count, 1);
    assert.equal(viewer.status, "closed");
  });

  test("a wrong overlay key is final (1008): no reconnect", async () => {
    const { room: roomId } = await server.liveRoom();
    const { Counting, opened } = countingSocket();
    const overlay = room(server, { roomId, overlayKey: "wrong", WebSocket: Counting });
    const error = await overlay.connect().catch((e) => e);
    assert.ok(error instanceof LiveError);
    assert.equal(error.code, "unauthorized");
    assert.equal(error.closeCode, 1008);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(opened.count, 1);
  });

  test("an overlay gets test alerts and creator-only detail; it can't act", async () => {
    const { room: roomId, creator, overlayKey } = await server.liveRoom();
    const overlay = room(server, { roomId, overlayKey });
    const welcome = await overlay.connect();
    assert.ok(welcome.overlay);
    const alert = next(overlay, "gift", (e) => e.test === true);
    await server.api("POST", `/v1/rooms/${roomId}/test-events`, creator, { gift: "rose", count: 1 });
    const gift = await alert;
    assert.equal(gift.sender.id, "test");
    assert.equal(gift.seq, undefined);
    const viewer = room(server, { roomId, token: await server.viewerWithCoins() });
    await viewer.connect();
    const real = next(overlay, "gift", (e) => !e.test);
    await viewer.sendGift("rose");
    assert.ok((await real).overlay?.stream);
    const refused = await overlay.like().catch((e) => e);
    assert.ok(refused instanceof LiveError);
    overlay.close();
    viewer.close();
  });

  test("a paced overlay gets one alert at a time, biggest first, next on alertDone", async () => {
    const { room: roomId, creator, overlayKey } = await server.liveRoom();
    const paced = room(server, { roomId, overlayKey, pace: true });
    await paced.connect();
    /** @type {any[]} */
    const alerts = [];
    /** @type {any[]} */
    const gifts = [];
    paced.on("alert", (a) => alerts.push(a));
    paced.on("gift", (g) => gifts.push(g));
    const first = next(paced, "alert");
    const sent = next(paced, "gift", () => gifts.length === 3);
    for (const gift of ["galaxy", "confetti", "sunglasses"]) {
      await server.api("POST", `/v1/rooms/${roomId}/test-events`, creator, { gift, count: 1 });
    }
    const shown = await first;
    assert.equal(shown.kind, "gift");
    assert.equal(shown.gift.gift.id, "galaxy");
    assert.equal(shown.seq, undefined);
    await sent;
    assert.equal(alerts.length, 1); // the others wait for alertDone
    const second = next(paced, "alert", (a) => a.id !== shown.id);
    assert.equal((await paced.alertDone(shown)).type, "ack");
    assert.equal((await second).gift.gift.id, "sunglasses"); // 199 coins before 100
    const third = next(paced, "alert", (a) => a.gift.gift.id === "confetti");
    await paced.alertDone((await second).id);
    assert.equal((await third).coins, 100);
    paced.close();
  });

  test("msgpack: the same room over gift.v1.msgpack", async () => {
    const { room: roomId } = await server.liveRoom();
    const viewer = room(server, { roomId, token: await server.viewerWithCoins(), encoding: "msgpack" });
    const welcome = await viewer.connect();
    assert.equal(welcome.type, "welcome");
    const own = next(viewer, "gift");
    const ack = await viewer.sendGift("rose", { count: 2 });
    assert.equal((await own).tx, ack.tx);
    assert.equal(ack.balance.coins >= 0, true);
    viewer.close();
  });

  test("events() iterates the room's events until it closes", async () => {
    const { room: roomId, creator } = await server.liveRoom();
    const liker = room(server, { roomId, token: server.token("iter") });
    const watcher = room(server, { roomId });
    await liker.connect();
    await watcher.connect();
    /** @type {string[]} */
    const types = [];
    const done = (async () => {
      for await (const event of watcher) types.push(event.type);
    })();
    await liker.like(2);
    await server.api("POST", `/v1/rooms/${roomId}/end`, creator);
    await done; // ends with the room (4010)
    assert.ok(types.includes("like"));
    assert.equal(types.at(-1), "room_ended");
    liker.close();
  });
});

describe("tokens that expire (LIVE_EXPIRED_TOKEN=close)", () => {
  const server = new LiveServer({ env: { LIVE_EXPIRED_TOKEN: "close", LIVE_JWT_LEEWAY_SECONDS: "0" } });
  before(() => server.start());
  after(() => server.dispose());

  test("refreshToken renews the connection with auth before the token expires", async () => {
    const { room: roomId } = await server.liveRoom();
    const { Counting, opened } = countingSocket();
    const first = server.token("renewer", { ttl: 6 });
    const firstExp = /** @type {number} */ (tokenExpiry(first));
    let refreshed = 0;
    /** @type {(value?: unknown) => void} */
    let onRefresh = () => {};
    const refreshedOnce = new Promise((r) => (onRefresh = r));
    const viewer = room(server, {
      roomId,
      token: first,
      WebSocket: Counting,
      refreshBeforeMs: 4_000,
      refreshToken: () => {
        refreshed += 1;
        onRefresh();
        return server.token("renewer");
      },
    });
    await viewer.connect();
    await refreshedOnce;
    await new Promise((r) => setTimeout(r, Math.max(0, firstExp * 1000 + 500 - Date.now()))); // past it
    assert.equal((await viewer.ping()).type, "ack");
    assert.equal(refreshed, 1);
    assert.equal(opened.count, 1); // renewed in place, never reconnected
    viewer.close();
  });

  test("after 4001 the room comes back only with a fresh token, resuming with since", async () => {
    const { room: roomId } = await server.liveRoom();
    const stale = room(server, { roomId, token: server.token("stale", { ttl: 1 }) });
    await stale.connect();
    const closed = await next(stale, "closed");
    assert.equal(closed.code, 4001); // no refreshToken: final

    const { Counting, opened } = countingSocket();
    const viewer = room(server, {
      roomId,
      token: server.token("fresh", { ttl: 1 }),
      WebSocket: Counting,
      refreshBeforeMs: -60_000, // never renew in place: let the server close
      refreshToken: () => server.token("fresh"),
    });
    await viewer.connect();
    const back = await next(viewer, "welcome", () => true, 10_000);
    assert.equal(back.resumed, true);
    assert.equal(opened.count, 2);
    assert.equal(new URL(viewer.url()).searchParams.get("since"), String(viewer.lastSeq));
    assert.equal((await viewer.ping()).type, "ack");
    viewer.close();
  });
});

describe("a short history (LIVE_HISTORY_SIZE=2)", () => {
  const server = new LiveServer({ env: { LIVE_HISTORY_SIZE: "2" } });
  before(() => server.start());
  after(() => server.dispose());

  test("coming back after more events than the history holds is a snapshot", async () => {
    const { room: roomId } = await server.liveRoom();
    const liker = room(server, { roomId, token: server.token("snap") });
    const watcher = room(server, { roomId });
    await liker.connect();
    await watcher.connect();
    const away = watcher.lastSeq;
    watcher.close(); // away for a while: it keeps its last seq
    for (let i = 0; i < 5; i += 1) await liker.like();
    const snapshot = next(watcher, "snapshot");
    /** @type {any[]} */
    const infos = [];
    watcher.on("welcome", (/** @type {any} */ _w, /** @type {any} */ info) => infos.push(info));
    watcher.open();
    const welcome = await snapshot;
    assert.equal(welcome.resumed, false);
    assert.deepEqual(infos, [{ resumed: false, first: false, snapshot: true }]);
    assert.ok(/** @type {number} */ (watcher.lastSeq) >= /** @type {number} */ (away) + 5);
    liker.close();
    watcher.close();
  });
});
