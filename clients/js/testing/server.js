// A real `live serve` on a free port for the tests, restartable on its data
// directory, with tokens signed by its secret and a little HTTP API client.
//
// The Python interpreter is LIVE_TEST_PYTHON, else the checkout's .venv, else
// python3.

import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const SECRET = "js-client-test-secret-0123456789abcdef0123456789";

function python() {
  if (process.env.LIVE_TEST_PYTHON) return process.env.LIVE_TEST_PYTHON;
  const venv = join(ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => done(port));
    });
  });
}

/** @param {unknown} value */
function base64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

export class LiveServer {
  /** @param {{ env?: Record<string, string> }} [options] */
  constructor({ env = {} } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "live-js-"));
    this.extraEnv = env;
    this.port = 0;
    /** @type {import("node:child_process").ChildProcess | null} */
    this.child = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    /** @type {Record<string, string | undefined>} */
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LIVE_")));
    Object.assign(env, {
      LIVE_SECRET: SECRET,
      LIVE_DATA_DIR: join(this.dir, "data"),
      LIVE_PORT: String(this.port),
      LIVE_HOST: "127.0.0.1",
      LIVE_LOG_LEVEL: "warning",
      LIVE_TICK_MS: "10",
      ...this.extraEnv,
    });
    const log = openSync(join(this.dir, "server.log"), "a");
    const child = spawn(python(), ["-m", "live", "serve"], { cwd: ROOT, env, stdio: ["ignore", log, log] });
    this.child = child;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`live serve exited with ${child.exitCode}; see ${this.dir}/server.log`);
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("live serve did not become ready");
  }

  /** SIGTERM (viewers get 1012) and wait for the exit. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    this.child = null;
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * An HS256 access token signed with the server's secret.
   * @param {string} user
   * @param {{ creator?: boolean, adult?: boolean, ttl?: number }} [options]
   */
  token(user, { creator = false, adult = true, ttl = 3600 } = {}) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: user,
      name: user,
      display_name: user[0].toUpperCase() + user.slice(1),
      avatar: "",
      adult,
      roles: creator ? ["creator"] : [],
      iat: now,
      exp: now + ttl,
    };
    const head = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url(claims)}`;
    return `${head}.${createHmac("sha256", SECRET).update(head).digest("base64url")}`;
  }

  /**
   * @param {string} method @param {string} path @param {string} token
   * @param {unknown} [body] @returns {Promise<any>}
   */
  async api(method, path, token, body) {
    /** @type {Record<string, string>} */
    const headers = { authorization: `Bearer ${token}`, "idempotency-key": randomUUID() };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** A creator goes live in a room of their own; returns `{ room, creator, overlayKey }`. */
  async liveRoom(name = `c${randomUUID().slice(0, 8)}`) {
    const creator = this.token(name, { creator: true });
    const created = await this.api("POST", "/v1/rooms", creator, { title: "js client test" });
    return { room: created.room_id ?? created.id ?? name, creator, overlayKey: created.overlay_key };
  }

  /** A viewer with coins bought from the sandbox provider; returns the token. */
  async viewerWithCoins(name = `v${randomUUID().slice(0, 8)}`) {
    const token = this.token(name);
    await this.api("POST", "/v1/purchases", token, { package: "us_700" });
    return token;
  }
}
