// A live room connection for the browser pages: the public protocol
// (docs/PROTOCOL.md) and nothing else.
//
// - every server frame is an array of events;
// - room events carry `seq`: an event at or below the last seq seen is never
//   delivered twice, and a gap makes the connection reconnect with `since`;
// - drops reconnect with exponential backoff and jitter (0.5 s doubling to
//   30 s, reset once a connection stayed up), resuming with `?since=`;
// - close codes that mean "don't come back unchanged" stop the reconnecting;
// - commands are matched to their `ack`/`error` by `id`; a `send_gift` with no
//   reply when the connection dropped is resent with the same id (its id is
//   its idempotency key), other commands fail with `connection_lost`.

const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013, 4008]);
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const STABLE_AFTER_MS = 10_000;
const REPLY_TIMEOUT_MS = 15_000;

export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export function newId(prefix = "") {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class RoomConnection {
  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string} [options.token] access token (viewers)
   * @param {string} [options.overlayKey] overlay key (overlays)
   * @param {(event: object) => void} options.onEvent room and test events, once each
   * @param {(welcome: object) => void} [options.onWelcome]
   * @param {(status: string, detail?: object) => void} [options.onStatus]
   *   "connecting", "live", "reconnecting", "closed"
   * @param {boolean} [options.persistent] also come back after the stream ended
   *   (4010): an overlay stays loaded in the streaming software between streams
   */
  constructor({ roomId, token = "", overlayKey = "", onEvent, onWelcome, onStatus, persistent = false }) {
    this.persistent = persistent;
    this.roomId = roomId;
    this.token = token;
    this.overlayKey = overlayKey;
    this.onEvent = onEvent;
    this.onWelcome = onWelcome || (() => {});
    this.onStatus = onStatus || (() => {});
    this.lastSeq = null;
    this.ws = null;
    this.delay = FIRST_DELAY_MS;
    this.stopped = false;
    this.pending = new Map(); // id -> {command, resolve, reject, timer}
    this.connections = 0;
    this.stableTimer = null;
    this.finalClose = null; // the close code after which this connection won't come back
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(`${scheme}//${location.host}/v1/rooms/${encodeURIComponent(this.roomId)}/live`);
    if (this.token) url.searchParams.set("access_token", this.token);
    if (this.overlayKey) url.searchParams.set("overlay_key", this.overlayKey);
    if (this.lastSeq !== null) url.searchParams.set("since", String(this.lastSeq));
    return url;
  }

  open() {
    this.stopped = false;
    this.finalClose = null;
    this.onStatus(this.connections === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url(), ["gift.v1.json"]);
    this.ws = ws;
    ws.onmessage = (message) => this.receive(ws, message.data);
    ws.onclose = (close) => this.closed(ws, close);
  }

  /** Drop the connection as if the network had (tests and "reconnect" buttons). */
  reconnect() {
    if (this.ws) this.ws.close(4000, "reconnect");
  }

  close() {
    this.stopped = true;
    clearTimeout(this.stableTimer);
    for (const id of [...this.pending.keys()]) {
      this.settle(id, null, new CommandError("connection_lost", "closed"));
    }
    const ws = this.ws;
    this.ws = null; // its close event is no longer ours to report
    if (ws) ws.close(1000);
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    let events;
    try {
      events = JSON.parse(data);
    } catch {
      return;
    }
    if (!Array.isArray(events)) return;
    for (const event of events) this.dispatch(event);
  }

  dispatch(event) {
    switch (event.type) {
      case "welcome":
        return this.welcomed(event);
      case "ack":
        return this.settle(event.id, event, null);
      case "error":
        if (event.id && this.pending.has(event.id)) {
          return this.settle(event.id, null, new CommandError(event.code, event.message));
        }
        return this.onStatus("error", event);
      default:
        break;
    }
    if (typeof event.seq === "number") {
      if (this.lastSeq !== null && event.seq <= this.lastSeq) return; // seen already
      if (this.lastSeq !== null && event.seq > this.lastSeq + 1) {
        this.reconnect(); // a gap: resume from the last seq we have
        return;
      }
      this.lastSeq = event.seq;
    }
    this.onEvent(event);
  }

  welcomed(welcome) {
    this.connections += 1;
    const resumed = welcome.resumed === true;
    if (!resumed || this.lastSeq === null) this.lastSeq = welcome.seq;
    this.onWelcome(welcome, { resumed, first: this.connections === 1 });
    this.onStatus("live", welcome);
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => {
      this.delay = FIRST_DELAY_MS;
    }, STABLE_AFTER_MS);
    for (const entry of this.pending.values()) this.ws.send(JSON.stringify(entry.command));
  }

  closed(ws, close) {
    if (ws !== this.ws) return;
    clearTimeout(this.stableTimer);
    this.ws = null;
    for (const [id, entry] of this.pending) {
      if (entry.command.type !== "send_gift") {
        this.settle(id, null, new CommandError("connection_lost", "the connection dropped"));
      }
    }
    const again =
      !this.stopped &&
      (RECONNECT_CODES.has(close.code) || close.code === 4000 || (this.persistent && close.code === 4010));
    if (!again) {
      for (const id of [...this.pending.keys()]) {
        this.settle(id, null, new CommandError("connection_lost", "the connection closed"));
      }
      this.finalClose = close.code;
      this.onStatus("closed", { code: close.code, reason: close.reason });
      return;
    }
    const floor = close.code === 4010 ? 5_000 : 0; // the next stream starts later, if at all
    const wait = close.code === 4000 ? 0 : Math.max(floor, this.delay * (0.5 + Math.random()));
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.onStatus("reconnecting", { code: close.code, wait });
    setTimeout(() => {
      if (!this.stopped) this.open();
    }, wait);
  }

  /**
   * Replace the access token: on the open connection with an `auth` command
   * (same user), and for every reconnect from now on. Resolves with the `ack`.
   */
  renewToken(token) {
    this.token = token;
    return this.send("auth", { token });
  }

  /** Send a command; resolves with its `ack`, rejects with a CommandError. */
  send(type, fields = {}) {
    const command = { type, id: newId(type.slice(0, 1) + "-"), ...fields };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.settle(command.id, null, new CommandError("timeout", "no reply from the server")),
        REPLY_TIMEOUT_MS,
      );
      this.pending.set(command.id, { command, resolve, reject, timer });
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(command));
      } else if (this.finalClose === 4010) {
        this.settle(command.id, null, new CommandError("room_not_live", "the stream has ended"));
      } else if (type !== "send_gift" || this.finalClose !== null || this.stopped) {
        this.settle(command.id, null, new CommandError("connection_lost", "not connected"));
      }
    });
  }

  settle(id, ack, error) {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(ack);
  }
}
