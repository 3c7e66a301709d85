// The item shop of the watch page: items for coins (badges, name styles,
// entrance and creator effects), what the user owns and until when, and
// equipping. Talks to GET /v1/items, GET/POST /v1/me/items and
// PUT/DELETE /v1/me/equipped (docs/PROTOCOL.md). Self-contained: the page
// mounts it with `mountItemShop` and tells it about sign-in and balance.

import { badgeIcon, decorateName, make } from "./badges.js";

const KIND_NAMES = {
  badge: "Badge",
  name_style: "Name style",
  entrance_effect: "Entrance effect",
  creator_effect: "Creator effect",
};

async function call(path, { token, method = "GET", body, key } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw Object.assign(new Error("network error"), { code: "network" });
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    throw Object.assign(new Error(error.message || response.statusText), {
      code: error.code || "internal",
      status: response.status,
    });
  }
  return payload;
}

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function lasts(item) {
  return item.duration_days ? `${item.duration_days} days` : "forever";
}

function until(expiresAt) {
  return expiresAt ? `until ${new Date(expiresAt).toLocaleDateString()}` : "forever";
}

/**
 * Mount the shop in `root` (an empty element). `getToken()` returns the
 * signed-in user's token ("" for a guest), `roomId` the room being watched
 * (its creator may earn a share), `onBalance(coins)` is told the balance after
 * a purchase, `onError(error)` gets `{code, message}` of a refusal, and
 * `preview()` returns the user's public profile to preview their look.
 * Returns `{ refresh(), open(), close(), state }`.
 */
export function mountItemShop({ root, getToken, roomId, onBalance, onError, preview }) {
  const state = { items: [], owned: new Map(), equipped: {}, coins: null, busy: false };
  const list = make("ul", { id: "items", class: "items" });
  const look = make("div", { class: "item-look" });
  const balance = make("span", { class: "item-balance" });
  root.replaceChildren(
    make(
      "div",
      { class: "shop-head" },
      make("h2", {}, "Items"),
      balance,
      make("button", { type: "button", class: "link", "data-action": "close" }, "Close"),
    ),
    look,
    list,
  );

  function renderLook() {
    const me = preview ? preview() : null;
    if (!me) return look.replaceChildren();
    const name = make("b", {}, me.display_name || me.username || me.id);
    const shown = { ...me, badge: null, name_style: null };
    for (const item of state.items) {
      if (state.equipped.badge === item.id) shown.badge = { id: item.id, name: item.name, image: item.image };
      if (state.equipped.name_style === item.id) shown.name_style = { id: item.id, color: item.color, bubble: item.bubble };
    }
    look.replaceChildren(make("span", {}, "You look like: "), name);
    decorateName(name, shown);
  }

  function render() {
    balance.textContent = state.coins === null ? "" : `${state.coins} coins`;
    balance.dataset.coins = state.coins === null ? "" : String(state.coins);
    const rows = state.items.map((item) => {
      const owned = state.owned.get(item.id);
      const equipped = state.equipped[item.kind] === item.id;
      const art = item.kind === "badge" ? badgeIcon({ badge: item }) : make("img", { class: "item-art", src: item.image, alt: "" });
      const name = make("b", { class: "item-name" }, item.name);
      if (item.kind === "name_style") decorateName(name, { name_style: item });
      const buttons = [];
      const affordable = state.coins === null || state.coins >= item.coins;
      buttons.push(
        make(
          "button",
          { type: "button", class: "buy-item", "data-action": "buy", "data-item": item.id, disabled: state.busy || (owned && !owned.expires_at) || !affordable },
          owned && !owned.expires_at ? "Owned" : owned ? `Extend · ${item.coins}` : `Buy · ${item.coins}`,
        ),
      );
      if (owned) {
        buttons.push(
          make(
            "button",
            { type: "button", class: equipped ? "unequip" : "equip", "data-action": equipped ? "unequip" : "equip", "data-item": item.id, "data-kind": item.kind, disabled: state.busy },
            equipped ? "Unequip" : "Equip",
          ),
        );
      }
      return make(
        "li",
        { class: `item${owned ? " owned" : ""}${equipped ? " equipped" : ""}`, dataset: { item: item.id, kind: item.kind } },
        art,
        make(
          "div",
          { class: "item-text" },
          name,
          make("div", { class: "item-kind" }, `${KIND_NAMES[item.kind] || item.kind} · ${lasts(item)}`),
          owned ? make("div", { class: "item-owned" }, `Owned ${until(owned.expires_at)}`) : null,
        ),
        make("div", { class: "item-price" }, make("span", { class: "coin", "aria-hidden": "true" }), ` ${item.coins}`),
        make("div", { class: "item-buttons" }, ...buttons),
      );
    });
    list.replaceChildren(...rows);
    renderLook();
  }

  function takeInventory(inventory) {
    state.owned = new Map(inventory.items.map((entry) => [entry.item, entry]));
    state.equipped = inventory.equipped || {};
  }

  async function refresh() {
    const token = getToken();
    const [shop, inventory, wallet] = await Promise.all([
      call("/v1/items"),
      token ? call("/v1/me/items", { token }) : Promise.resolve({ items: [], equipped: {} }),
      token ? call("/v1/me/wallet", { token }) : Promise.resolve(null),
    ]);
    state.items = shop.items;
    takeInventory(inventory);
    state.coins = wallet ? wallet.coins : null;
    render();
  }

  async function act(action, button) {
    const token = getToken();
    if (!token || state.busy) return;
    state.busy = true;
    render();
    try {
      if (action === "buy") {
        const item = state.items.find((i) => i.id === button.dataset.item);
        const receipt = await call("/v1/me/items", {
          token,
          method: "POST",
          key: newKey(),
          body: { item: item.id, room: roomId || undefined, coins: item.coins },
        });
        state.coins = receipt.balance.coins;
        if (onBalance) onBalance(state.coins);
        takeInventory(await call("/v1/me/items", { token }));
      } else if (action === "equip") {
        // `room`: a creator equipping a creator effect shows it in the room at once
        const body = { item: button.dataset.item, room: roomId || undefined };
        takeInventory(await call("/v1/me/equipped", { token, method: "PUT", body }));
      } else if (action === "unequip") {
        const room = roomId ? `?room=${encodeURIComponent(roomId)}` : "";
        takeInventory(await call(`/v1/me/equipped/${encodeURIComponent(button.dataset.kind)}${room}`, { token, method: "DELETE" }));
      }
    } catch (error) {
      if (onError) onError(error);
      if (error.code === "price_changed") await refresh().catch(() => {});
    } finally {
      state.busy = false;
      render();
    }
  }

  root.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "close") root.hidden = true;
    else act(button.dataset.action, button);
  });

  return {
    state,
    refresh,
    async open() {
      root.hidden = false;
      await refresh().catch((error) => onError && onError(error));
    },
    close() {
      root.hidden = true;
    },
  };
}
