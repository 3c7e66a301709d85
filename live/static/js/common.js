// Shared by the watch page and the overlay: the HTTP API, error texts, and
// small DOM helpers. Text from users is always set as text, never as HTML.

/** What to tell a person for each error code (docs/PROTOCOL.md, section 7). */
export const ERROR_MESSAGES = {
  bad_request: "That request wasn't valid.",
  unauthorized: "Please sign in again: your token is missing, invalid or expired.",
  forbidden: "You're not allowed to do that here.",
  not_found: "That room or gift doesn't exist.",
  insufficient_funds: "Not enough coins. Buy coins to send this gift.",
  limit_exceeded: "A spending limit was reached (or the room is full).",
  rate_limited: "Slow down a little and try again in a moment.",
  room_not_live: "The room isn't live right now.",
  conflict: "That gift was already sent with different details.",
  price_changed: "That gift's price just changed. Nothing was charged: check the new price.",
  too_large: "That was too large to send.",
  internal: "Something went wrong on the server. Please try again.",
  payment_declined: "The payment was declined. Nothing was charged.",
  provider_unavailable: "The payment service can't be reached. Nothing was charged: try again.",
  connection_lost: "The connection dropped before the server answered.",
  timeout: "The server didn't answer in time.",
  network: "Can't reach the server. Check your connection.",
};

/** A person-facing message for an error code, with the server's detail when useful. */
export function describeError(code, detail = "") {
  const base = ERROR_MESSAGES[code] || "Something went wrong.";
  if (code === "forbidden" || code === "limit_exceeded" || code === "bad_request") {
    return detail ? `${base} (${detail})` : base;
  }
  return base;
}

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** Call the JSON API; resolves with the body, rejects with an ApiError. */
export async function api(path, { method = "GET", token = "", body, idempotencyKey } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("network", "network error", 0);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    throw new ApiError(error.code || "internal", error.message || response.statusText, response.status);
  }
  return payload;
}

/** `el("div", {class: "x"}, "text", child)`: an element; strings become text nodes. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The coin symbol (drawn by CSS: no emoji font needed). */
export function coinIcon() {
  return el("span", { class: "coin", "aria-label": "coins" });
}

export function formatNumber(value) {
  return new Intl.NumberFormat("en-US").format(value);
}

/** A user's avatar: their image, or their initial on a color picked from their id. */
export function avatar(user, size = "") {
  const name = (user && (user.display_name || user.username)) || "?";
  const src = user && typeof user.avatar === "string" ? user.avatar : "";
  if (/^(https?:|data:image\/|\/)/.test(src)) {
    return el("img", { class: `avatar ${size}`, src, alt: "", referrerpolicy: "no-referrer" });
  }
  let hash = 0;
  for (const ch of (user && user.id) || name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const initial = el("span", { class: `avatar initial ${size}` }, Array.from(name)[0].toUpperCase());
  initial.style.setProperty("--hue", String(hash % 360));
  return initial;
}

export function displayName(user) {
  return (user && (user.display_name || user.username || user.id)) || "someone";
}

const KNOWN_ANIMATIONS = new Set([
  "float", "pop", "spray", "bounce", "burst", "slide", "spiral", "roar", "cosmos",
]);

/** The gift's picture inside the element carrying its animation class. */
export function giftArt(gift, { big = false } = {}) {
  const animation = KNOWN_ANIMATIONS.has(gift.animation) ? gift.animation : "default";
  const src = typeof gift.image === "string" && gift.image ? gift.image : `/static/gifts/${gift.id}.svg`;
  return el(
    "div",
    { class: `gift-art anim-${animation}${big ? " gift-big" : ""}` },
    el("img", { src, alt: gift.name || gift.id, draggable: "false" }),
  );
}

/** A gift alert: art, sender, "sent Rose", and the combo counter (×N). */
export function giftAlert(event, { big = false } = {}) {
  const node = el(
    "div",
    {
      class: `gift-alert${big ? " big" : ""}${event.test ? " test" : ""}`,
      dataset: { combo: event.combo.id, gift: event.gift.id, sender: event.sender.id },
    },
    giftArt(event.gift, { big }),
    el(
      "div",
      { class: "gift-text" },
      el("div", { class: "gift-sender" }, avatar(event.sender, "small"), el("span", { class: "name" }, displayName(event.sender))),
      el("div", { class: "gift-line" }, `sent ${event.gift.name}`),
    ),
    el("div", { class: "gift-count", "aria-live": "polite" }, `×${event.combo.count}`),
  );
  node.dataset.count = String(event.combo.count);
  return node;
}

/** Bump an alert's combo counter (a new running total of the streak). */
export function updateAlertCount(node, count) {
  if (Number(node.dataset.count) >= count) return;
  node.dataset.count = String(count);
  const counter = node.querySelector(".gift-count");
  counter.textContent = `×${count}`;
  counter.classList.remove("bump");
  void counter.offsetWidth; // restart the bump animation
  counter.classList.add("bump");
}

export function goalView(goal) {
  const wrap = el("div", { class: "goal" });
  renderGoal(wrap, goal);
  return wrap;
}

export function renderGoal(wrap, goal) {
  wrap.replaceChildren();
  wrap.hidden = !goal;
  if (!goal) return;
  const percent = Math.min(100, Math.floor((goal.progress * 100) / Math.max(1, goal.target)));
  const bar = el("div", { class: "goal-bar" }, el("div", { class: "goal-fill" }));
  bar.firstChild.style.width = `${percent}%`;
  wrap.classList.toggle("reached", goal.reached === true || goal.progress >= goal.target);
  wrap.append(
    el("div", { class: "goal-title" }, goal.title || "Goal"),
    bar,
    el("div", { class: "goal-numbers" }, `${formatNumber(goal.progress)} / ${formatNumber(goal.target)} diamonds`),
  );
  wrap.dataset.progress = String(goal.progress);
  wrap.dataset.target = String(goal.target);
}

export function leaderboardView(list, top, limit) {
  list.replaceChildren(
    ...top.slice(0, limit).map((entry, index) =>
      el(
        "li",
        { class: `rank-${index + 1}`, dataset: { user: entry.user.id, coins: entry.coins } },
        el("span", { class: "rank" }, String(index + 1)),
        avatar(entry.user, "small"),
        el("span", { class: "name" }, displayName(entry.user)),
        el("span", { class: "coins" }, formatNumber(entry.coins), " ", coinIcon()),
      ),
    ),
  );
}

/** Query parameter helpers. */
export function params() {
  return new URLSearchParams(location.search);
}

export function roomIdFromPath(prefix) {
  const rest = location.pathname.slice(prefix.length);
  return decodeURIComponent(rest.split("/")[0] || "");
}
