// A client for the live room protocol (docs/PROTOCOL.md), for browsers and Node.
//
// - every server frame is an array of events, JSON or MessagePack;
// - room events carry `seq`: one already seen is never delivered twice, and a
//   gap makes the connection reconnect with `since` to fill it;
// - drops reconnect with exponential backoff and jitter (0.5 s doubling to
//   30 s, reset once a connection stayed up), resuming with `?since=`; a
//   `welcome` that could not resume is announced as a `snapshot`;
// - close codes that mean "don't come back unchanged" stop the reconnecting;
//   4001 (token expired) comes back only with a fresh token from `refreshToken`;
// - commands are matched to their `ack`/`error` by `id`; a `send_gift` with no
//   reply when the connection dropped (or sent while disconnected) is sent
//   again with the same id after reconnecting, so it takes effect exactly once
//   (its id is its idempotency key); other commands fail with `connection_lost`.

/** Close codes after which a client comes back, with `since` (PROTOCOL.md section 8). */
export const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013, 4008]);
/** The close code `reconnect()` uses for a drop the client asks for itself. */
export const CLIENT_RECONNECT = 4000;
export const SUBPROTOCOLS = { json: "gift.v1.json", msgpack: "gift.v1.msgpack" };

const DEFAULTS = {
  firstDelayMs: 500,
  maxDelayMs: 30_000,
  stableAfterMs: 10_000,
  replyTimeoutMs: 15_000,
  endedDelayMs: 5_000,
  refreshBeforeMs: 60_000,
};
const OPEN = 1;

/**
 * A command the server refused (`code` is a protocol error code, PROTOCOL.md
 * section 7), or one that got no reply: `connection_lost`, `timeout`.
 */
export class LiveError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ id?: string | null, command?: Record<string, unknown> | null, closeCode?: number | null }} [detail]
   */
  constructor(code, message, { id = null, command = null, closeCode = null } = {}) {
    super(message);
    this.name = "LiveError";
    /** @type {string} */
    this.code = code;
    /** @type {string | null} the command's id */
    this.id = id;
    /** @type {Record<string, unknown> | null} the command, to send again with the same id */
    this.command = command;
    /** @type {number | null} the close code, for errors that ended the connection */
    this.closeCode = closeCode;
  }

  /** The server says: send again later with the same id. */
  get retryable() {
    return ["rate_limited", "internal", "timeout", "connection_lost"].includes(this.code);
  }
}

/** A random command id: `prefix` and 24 hex digits. */
export function newId(prefix = "") {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The `exp` claim of a JWT (seconds since the epoch), or null; the signature is
 * not checked (the server does that), this only says when to renew.
 * @param {string} token
 * @returns {number | null}
 */
export function tokenExpiry(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

/**
 * One viewer's (or overlay's) connection to a live room, kept up across drops.
 *
 * Events: `event` (every room event and overlay test event, once each, in
 * order), one per event type (`gift`, `like`, `chat`, …), `welcome`
 * (`(welcome, {resumed, first, snapshot})`), `snapshot` (a welcome that
 * replaces your state: history was too short to resume), `status`
 * (`(status, detail)`: connecting, live, reconnecting, error, closed),
 * `error` (an error event not about one of your commands), `closed` (final).
 */
export class LiveRoom {
  /**
   * @param {import("./index.js").LiveRoomOptions} options
   */
  constructor(options) {
    const {
      url = "",
      roomId,
      token = "",
      overlayKey = "",
      pace = false,
      encoding = "json",
      WebSocket = globalThis.WebSocket,
      msgpack = null,
      refreshToken = null,
      persistent = false,
      onEvent = null,
      onWelcome = null,
      onStatus = null,
      random = Math.random,
      ...timing
    } = options;
    if (!roomId) throw new TypeError("roomId is required");
    if (!WebSocket) throw new TypeError("no WebSocket: pass one (for example the ws package's)");
    if (encoding !== "json" && encoding !== "msgpack") throw new TypeError("encoding is json or msgpack");
    if (token && overlayKey) throw new TypeError("connect with a token or an overlay key, not both");
    this.base = url;
    this.roomId = roomId;
    this.token = token;
    this.overlayKey = overlayKey;
    this.pace = Boolean(pace);
    this.encoding = encoding;
    this.WebSocket = WebSocket;
    this.codec = msgpack;
    this.refreshToken = refreshToken;
    this.persistent = persistent;
    this.random = random;
    this.timing = { ...DEFAULTS, ...timing };
    /** @type {number | null} the last `seq` seen: what a reconnect passes as `since` */
    this.lastSeq = null;
    /** @type {Record<string, any> | null} the last `welcome` */
    this.welcome = null;
    /** @type {string} */
    this.status = "idle";
    /** @type {number | null} the close code after which this room won't come back */
    this.finalClose = null;
    this.ws = null;
    this.delay = this.timing.firstDelayMs;
    this.stopped = false;
    this.connections = 0;
    /** @type {Map<string, {command: Record<string, any>, resolve: Function, reject: Function, timer: any, renewOnExpiry: boolean}>} */
    this.pending = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** @type {Record<"stable" | "retry" | "refresh", any>} */
    this.timers = { stable: null, retry: null, refresh: null };
    this.lastError = null;
    this.refreshing = null;
    this.live = false; // between a welcome and its connection's close
    this.retriedHandshake = false;
    if (onEvent) this.on("event", onEvent);
    if (onWelcome) this.on("welcome", onWelcome);
    if (onStatus) this.on("status", onStatus);
  }

  // -- events ------------------------------------------------------------------------

  /**
   * Listen to an event; returns a function that stops listening.
   * @param {string} type
   * @param {Function} listener
   */
  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(listener);
    return () => this.off(type, listener);
  }

  /** @param {string} type @param {Function} listener */
  off(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }

  /** @param {string} type @param {...any} args */
  emit(type, ...args) {
    for (const listener of [...(this.listeners.get(type) || [])]) {
      try {
        listener(...args);
      } catch (error) {
        // A listener's bug must not stop the room; report it where it can be seen.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  /**
   * Every room event (and `welcome`) from now on, until the room closes for good.
   * @returns {AsyncGenerator<Record<string, any>, void, void>}
   */
  async *events() {
    /** @type {Record<string, any>[]} */
    const queue = [];
    /** @type {(() => void) | null} */
    let wake = null;
    let done = this.finalClose !== null || this.stopped;
    const push = (/** @type {any} */ event) => {
      queue.push(event);
      if (wake) wake();
    };
    const offs = [
      this.on("event", push),
      this.on("welcome", push),
      this.on("closed", () => {
        done = true;
        if (wake) wake();
      }),
    ];
    try {
      while (true) {
        while (queue.length) yield /** @type {Record<string, any>} */ (queue.shift());
        if (done) return;
        await new Promise((resolve) => (wake = () => resolve(undefined)));
        wake = null;
      }
    } finally {
      for (const off of offs) off();
    }
  }

  [Symbol.asyncIterator]() {
    return this.events();
  }

  // -- the connection ------------------------------------------------------------------

  /** The WebSocket URL of the next connection. */
  url() {
    let base = this.base;
    if (!base) {
      if (typeof location === "undefined") throw new TypeError("url is required outside a browser");
      base = location.origin;
    }
    const url = new URL(`/v1/rooms/${encodeURIComponent(this.roomId)}/live`, base);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    if (this.token) url.searchParams.set("access_token", this.token);
    if (this.overlayKey) url.searchParams.set("overlay_key", this.overlayKey);
    if (this.pace) url.searchParams.set("pace", "1");
    if (this.lastSeq !== null) url.searchParams.set("since", String(this.lastSeq));
    return url;
  }

  /**
   * Open the connection (and keep it open). Resolves with the first `welcome`,
   * rejects with a LiveError when the room closes before one.
   * @returns {Promise<Record<string, any>>}
   */
  connect() {
    if (this.live && this.welcome) return Promise.resolve(this.welcome); // connected already
    const welcomed = new Promise((resolve, reject) => {
      const offs = [
        this.on("welcome", (/** @type {any} */ welcome) => {
          for (const off of offs) off();
          resolve(welcome);
        }),
        this.on("closed", (/** @type {any} */ detail) => {
          for (const off of offs) off();
          const error = detail.error || {};
          reject(
            new LiveError(error.code || "connection_lost", error.message || `closed with ${detail.code}`, {
              closeCode: detail.code,
            }),
          );
        }),
      ];
    });
    this.open().catch((error) => this.failed(error));
    return welcomed;
  }

  /** Open the connection without waiting for the welcome (the pages use this). */
  async open() {
    if (this.ws) return; // open already
    this.stopped = false;
    this.finalClose = null;
    clearTimeout(this.timers.retry);
    this.setStatus(this.connections === 0 ? "connecting" : "reconnecting");
    if (this.encoding === "msgpack" && !this.codec) this.codec = await loadMsgpack();
    if (this.stopped) return;
    const ws = new this.WebSocket(this.url().toString(), [SUBPROTOCOLS[this.encoding]]);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (/** @type {{data: any}} */ message) => this.receive(ws, message.data);
    ws.onclose = (/** @type {{code: number, reason: string}} */ close) => this.closed(ws, close);
    ws.onerror = () => {}; // a close event follows
  }

  /**
   * The connection could not even be attempted (no msgpack codec, a bad URL): final.
   * @param {any} error
   */
  failed(error) {
    const code = error instanceof LiveError ? error.code : "bad_request";
    this.lastError = { type: "error", id: null, code, message: String(error?.message ?? error) };
    this.finish({ code: 1006, reason: String(error) });
  }

  /** Drop the connection and resume at once, as after a network drop. */
  reconnect() {
    if (this.ws) this.ws.close(CLIENT_RECONNECT, "reconnect");
  }

  /** Close for good: pending commands fail with `connection_lost`. */
  close() {
    this.stopped = true;
    const ws = this.ws;
    this.ws = null; // its close event is no longer ours to report
    if (ws) ws.close(1000);
    this.finish({ code: 1000, reason: "closed by the client" });
  }

  /** @param {string} status @param {any} [detail] */
  setStatus(status, detail) {
    this.status = status;
    this.emit("status", status, detail);
  }

  /** @param {any} ws @param {any} data */
  receive(ws, data) {
    if (ws !== this.ws) return;
    let events;
    try {
      events = this.decode(data);
    } catch {
      return;
    }
    if (!Array.isArray(events)) return;
    for (const event of events) {
      if (ws !== this.ws) return; // a gap dropped this connection: its other events come again
      if (event && typeof event === "object") this.dispatch(event);
    }
  }

  /** @param {any} data */
  decode(data) {
    if (typeof data === "string") return JSON.parse(data);
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.encoding === "msgpack" && this.codec) return this.codec.decode(bytes);
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  /** @param {Record<string, any>} command */
  encode(command) {
    if (this.encoding === "msgpack" && this.codec) return this.codec.encode(command);
    return JSON.stringify(command);
  }

  /** @param {Record<string, any>} event */
  dispatch(event) {
    switch (event.type) {
      case "welcome":
        return this.welcomed(event);
      case "ack":
        return this.settle(event.id, event, null);
      case "error":
        if (event.id && this.pending.has(event.id)) return this.refused(event);
        this.lastError = event;
        this.emit("error", event);
        return this.setStatus("error", event);
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
    this.emit("event", event);
    this.emit(event.type, event);
  }

  /** @param {Record<string, any>} welcome */
  welcomed(welcome) {
    this.connections += 1;
    this.lastError = null;
    this.live = true;
    this.retriedHandshake = false;
    const resumed = welcome.resumed === true;
    const snapshot = !resumed && this.lastSeq !== null; // events between were not replayed
    if (!resumed || this.lastSeq === null) this.lastSeq = welcome.seq;
    this.welcome = welcome;
    const info = { resumed, first: this.connections === 1, snapshot };
    this.emit("welcome", welcome, info);
    if (snapshot) this.emit("snapshot", welcome);
    this.setStatus("live", welcome);
    clearTimeout(this.timers.stable);
    this.timers.stable = setTimeout(() => {
      this.delay = this.timing.firstDelayMs;
    }, this.timing.stableAfterMs);
    this.scheduleRefresh();
    for (const entry of this.pending.values()) this.transmit(entry.command);
  }

  /** @param {any} ws @param {{code: number, reason: string}} close */
  closed(ws, close) {
    if (ws !== this.ws) return;
    clearTimeout(this.timers.stable);
    this.ws = null;
    this.live = false;
    for (const [id, entry] of this.pending) {
      if (entry.command.type !== "send_gift") {
        this.settle(id, null, this.lost(entry.command, "the connection dropped", close.code));
      }
    }
    const code = close.code;
    if (!this.stopped && code === 4001 && this.refreshToken) {
      this.setStatus("reconnecting", { code, wait: 0 });
      this.renewAndReopen();
      return;
    }
    const refusedAtHandshake = code === 1008 && this.lastError?.code === "unauthorized" && !this.retriedHandshake;
    if (!this.stopped && refusedAtHandshake && this.refreshToken && this.token) {
      // Refused at the handshake: the token expired while we were away. Once.
      this.retriedHandshake = true;
      this.renewAndReopen();
      return;
    }
    const again =
      !this.stopped &&
      (RECONNECT_CODES.has(code) || code === CLIENT_RECONNECT || (this.persistent && code === 4010));
    if (!again) {
      this.finish(close);
      return;
    }
    const floor = code === 4010 ? this.timing.endedDelayMs : 0; // the next stream starts later, if at all
    const wait = code === CLIENT_RECONNECT ? 0 : Math.max(floor, this.delay * (0.5 + this.random()));
    this.delay = Math.min(this.delay * 2, this.timing.maxDelayMs);
    this.setStatus("reconnecting", { code, wait });
    this.timers.retry = setTimeout(() => {
      if (!this.stopped) this.open().catch((error) => this.failed(error));
    }, wait);
  }

  async renewAndReopen() {
    const before = this.token;
    try {
      await this.renew();
    } catch {
      // no fresh token: stay closed
    }
    if (this.stopped) return;
    if (this.token === before) {
      this.finish({ code: 4001, reason: "no fresh token" });
      return;
    }
    this.lastError = null;
    this.open().catch((error) => this.failed(error));
  }

  /** The room won't come back: fail what is pending, say so once. */
  /** @param {{code: number, reason?: string}} close */
  finish(close) {
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    for (const [id, entry] of [...this.pending]) {
      this.settle(id, null, this.lost(entry.command, "the connection closed", close.code));
    }
    if (this.finalClose !== null) return;
    this.finalClose = close.code;
    this.ws = null;
    this.live = false;
    const detail = { code: close.code, reason: close.reason || "", error: this.lastError };
    this.setStatus("closed", detail);
    this.emit("closed", detail);
  }

  /** @param {Record<string, any>} command @param {string} why @param {number | null} closeCode */
  lost(command, why, closeCode) {
    if (closeCode === 4010) {
      return new LiveError("room_not_live", "the stream has ended", { id: command.id, command, closeCode });
    }
    return new LiveError("connection_lost", why, { id: command.id, command, closeCode });
  }

  // -- tokens -------------------------------------------------------------------------

  scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    if (!this.refreshToken || !this.token) return;
    const exp = tokenExpiry(this.token);
    if (exp === null) return;
    const wait = Math.max(0, exp * 1000 - Date.now() - this.timing.refreshBeforeMs);
    this.timers.refresh = setTimeout(() => {
      this.renew().catch(() => {});
    }, Math.min(wait, 2 ** 31 - 1));
  }

  /**
   * Ask `refreshToken` for a fresh token and renew the connection with it.
   * Concurrent callers share one refresh.
   */
  renew() {
    if (!this.refreshToken) return Promise.reject(new LiveError("unauthorized", "no refreshToken hook"));
    if (!this.refreshing) {
      const hook = this.refreshToken;
      this.refreshing = (async () => {
        try {
          const fresh = await hook();
          if (!fresh) throw new LiveError("unauthorized", "refreshToken gave no token");
          return await this.renewToken(fresh);
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /**
   * Replace the access token: on the open connection with an `auth` command
   * (same user), and for every reconnect from now on. Resolves with the `ack`
   * (or null when not connected: the next connection uses the token).
   * @param {string} token
   */
  async renewToken(token) {
    this.token = token;
    this.scheduleRefresh();
    if (!this.live) return null;
    return this.send("auth", { token }, { renewOnExpiry: false });
  }

  // -- commands -----------------------------------------------------------------------

  /**
   * Send a command; resolves with its `ack`, rejects with a LiveError.
   * @param {string} type
   * @param {Record<string, any>} [fields]
   * @param {{ id?: string, renewOnExpiry?: boolean }} [options]
   * @returns {Promise<Record<string, any>>}
   */
  send(type, fields = {}, { id = newId(type.slice(0, 1) + "-"), renewOnExpiry = true } = {}) {
    const command = { type, id, ...fields };
    return new Promise((resolve, reject) => {
      if (this.pending.has(id)) {
        reject(new LiveError("conflict", "a command with this id is waiting for its reply", { id, command }));
        return;
      }
      const timer = setTimeout(
        () => this.settle(id, null, new LiveError("timeout", "no reply from the server", { id, command })),
        this.timing.replyTimeoutMs,
      );
      this.pending.set(id, { command, resolve, reject, timer, renewOnExpiry });
      if (this.live) {
        this.transmit(command);
      } else if (this.finalClose !== null || this.stopped) {
        this.settle(id, null, this.lost(command, "not connected", this.finalClose));
      } else if (type !== "send_gift") {
        this.settle(id, null, this.lost(command, "not connected", null));
      }
      // a gift waits for the next welcome, which sends it
    });
  }

  /** @param {Record<string, any>} command */
  transmit(command) {
    if (this.ws && this.ws.readyState === OPEN) this.ws.send(this.encode(command));
  }

  /** @param {Record<string, any>} error */
  refused(error) {
    const entry = this.pending.get(error.id);
    if (
      entry &&
      error.code === "unauthorized" &&
      entry.renewOnExpiry &&
      this.refreshToken &&
      this.token &&
      entry.command.type !== "auth"
    ) {
      // The token expired: renew it, then send the command again (it ran nowhere).
      entry.renewOnExpiry = false;
      this.renew().then(
        () => this.transmit(entry.command),
        () => this.settle(error.id, null, this.commandError(error, entry.command)),
      );
      return;
    }
    this.settle(error.id, null, this.commandError(error, entry?.command ?? null));
  }

  /** @param {Record<string, any>} error @param {Record<string, any> | null} command */
  commandError(error, command) {
    return new LiveError(error.code, error.message, { id: error.id, command });
  }

  /** @param {string} id @param {Record<string, any> | null} ack @param {LiveError | null} error */
  settle(id, ack, error) {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(ack);
  }

  /**
   * Send a gift. Its id is its idempotency key: it is sent again with the same
   * id after a drop, and charged once. `coins` is the price of one you showed
   * the user: a changed price fails with `price_changed`, charging nothing.
   * @param {string} gift
   * @param {{ count?: number, coins?: number, id?: string }} [options]
   */
  sendGift(gift, { count = 1, coins, id = newId("g-") } = {}) {
    /** @type {Record<string, any>} */
    const fields = { gift, count };
    if (coins !== undefined) fields.coins = coins;
    return this.send("send_gift", fields, { id });
  }

  /** @param {number} [count] taps, 1 to 100 */
  like(count = 1) {
    return this.send("like", { count });
  }

  /** @param {string} text */
  chat(text) {
    return this.send("chat", { text });
  }

  ping() {
    return this.send("ping");
  }

  /**
   * Say a paced `alert` finished playing (connect with `pace: true`), so the
   * server sends the next one. A late or repeated one is acknowledged too.
   * @param {string | { id: string }} alert the `alert` event, or its id
   */
  alertDone(alert) {
    return this.send("alert_done", { alert: typeof alert === "string" ? alert : alert.id });
  }
}

/** The optional MessagePack codec, loaded only when a room asks for msgpack. */
async function loadMsgpack() {
  const specifier = "@msgpack/msgpack";
  try {
    const module = await import(specifier);
    return { encode: module.encode, decode: module.decode };
  } catch (error) {
    throw new LiveError("bad_request", `msgpack needs the ${specifier} package (or the msgpack option): ${error}`);
  }
}
