// A gift-alert bot for Node: prints every gift in a room with the sender's name
// (and badge) and the combo count, and every entrance effect, and keeps going across drops and server restarts.
//
//   cd clients/js && npm ci
//   node examples/gift-alerts.mjs http://127.0.0.1:8000 demo [overlay key]

import WebSocket from "ws";

import { LiveRoom } from "../src/index.js";

const [url, roomId, overlayKey = ""] = process.argv.slice(2);
if (!url || !roomId) {
  console.error("usage: node examples/gift-alerts.mjs <server url> <room id> [overlay key]");
  process.exit(2);
}

/** @param {import("../src/index.js").User} user */
const named = (user) => (user.badge ? `[${user.badge.name}] ` : "") + user.display_name;

const room = new LiveRoom({ url, roomId, overlayKey, WebSocket, persistent: true });
room.on("snapshot", () => console.log("(missed some events while away)"));
room.on("gift", (event) => {
  if (event.count === 0) return; // a streak's final event adds nothing
  const test = event.test ? " (test)" : "";
  console.log(`${named(event.sender)} sent ${event.gift.name} x${event.count} (combo x${event.combo.count})${test}`);
});
room.on("entrance", (event) => {
  console.log(`${named(event.user)} enters with ${event.effect.name} (${event.effect.asset?.url ?? event.effect.image})`);
});
room.on("closed", ({ code, error }) => console.log(`closed (${code})${error ? `: ${error.message}` : ""}`));
const welcome = await room.connect();
console.log(`watching ${welcome.room.title || roomId}: ${welcome.viewers} viewers`);
