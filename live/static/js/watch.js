// The viewer's watch page: /watch/{room_id}[?token=…]. Signs in with an
// access token, shows the balance, buys coins (sandbox), sends gifts, likes
// and comments, and plays the room's gift animations as they arrive.

import { LiveError, LiveRoom, newId } from "/static/client/index.js";
import {
  api,
  avatar,
  coinIcon,
  describeError,
  displayName,
  el,
  formatNumber,
  giftAlert,
  leaderboardView,
  params,
  renderGoal,
  roomIdFromPath,
  updateAlertCount,
} from "./common.js";
// items: the item shop, badges and name styles, entrance effects
import { decorateAlert, decorateName, mountStreamEffect, playEntrance } from "./badges.js";
import { mountItemShop } from "./shop.js";

const TOKEN_KEY = "live.token";
const LIKE_BATCH_MS = 300;
const ALERT_MS = 4_000;
const BIG_ALERT_MS = 8_000;
const BIG_COINS = 1_000;
const CHAT_LINES = 60;

const $ = (id) => document.getElementById(id);
const roomId = roomIdFromPath("/watch/");
const state = {
  token: "",
  you: null,
  coins: null,
  gifts: [],
  connection: null,
  likesQueued: 0,
  likeTimer: null,
  alerts: new Map(), // combo id -> {node, timer}
  live: true,
  seqs: [], // the last room events shown, in order (tests and support read it)
};

// -- messages -------------------------------------------------------------------

function toast(text, kind = "error") {
  const node = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 6_000 : 3_000);
}

function showError(error) {
  toast(describeError(error.code, error.message));
  if (error.code === "insufficient_funds") openShop();
  if (error.code === "unauthorized") signOut();
}

// -- token ----------------------------------------------------------------------

function takeToken() {
  const query = params();
  const fromUrl = query.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    query.delete("token"); // keep it out of the address bar, history and screenshots
    const rest = query.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  state.you = null;
  state.coins = null;
  connect();
  renderAccount();
}

// -- account and balance ----------------------------------------------------------

function renderAccount() {
  const signedIn = Boolean(state.token && state.you);
  $("signin").hidden = Boolean(state.token);
  $("me").hidden = !signedIn;
  if (signedIn) {
    $("me-avatar").replaceChildren(avatar(state.you));
    $("me-name").textContent = displayName(state.you);
  }
  $("balance").textContent = state.coins === null ? "–" : formatNumber(state.coins);
  document.body.dataset.signedIn = String(signedIn);
  renderGifts();
}

function setBalance(coins) {
  state.coins = coins;
  $("balance").textContent = formatNumber(coins);
  $("balance").dataset.coins = String(coins);
  renderGifts();
}

async function refreshBalance() {
  if (!state.token) return;
  try {
    const wallet = await api("/v1/me/wallet", { token: state.token });
    setBalance(wallet.coins);
    if (wallet.locked) toast("Your account is locked until its debt is settled.");
  } catch (error) {
    showError(error);
  }
}

// -- shop -----------------------------------------------------------------------

function openShop() {
  if (!state.token) return;
  $("shop").hidden = false;
  loadPackages();
}

async function loadPackages() {
  const region = $("region").value || "US";
  try {
    const body = await api(`/v1/coin-packages?region=${encodeURIComponent(region)}`, { token: state.token });
    const money = (minor, currency) =>
      new Intl.NumberFormat("en-US", { style: "currency", currency }).format(minor / 100);
    $("packages").replaceChildren(
      ...body.packages.map((offer) =>
        el(
          "li",
          { dataset: { package: offer.id } },
          el("span", { class: "coins" }, coinIcon(), " ", formatNumber(offer.effective_coins)),
          offer.effective_coins > offer.coins ? el("span", { class: "bonus" }, `+${formatNumber(offer.effective_coins - offer.coins)} bonus`) : null,
          el("button", { type: "button", class: "buy", dataset: { package: offer.id } }, money(offer.price_minor, offer.currency)),
        ),
      ),
    );
  } catch (error) {
    showError(error);
  }
}

async function buy(packageId, button) {
  button.disabled = true;
  try {
    const receipt = await api("/v1/purchases", {
      method: "POST",
      token: state.token,
      body: { package: packageId, region: $("region").value, provider: "sandbox" },
      idempotencyKey: newId("buy-"),
    });
    setBalance(receipt.balance.coins);
    toast(`Bought ${formatNumber(receipt.coins + receipt.bonus)} coins.`, "ok");
    $("shop").hidden = true;
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// -- gifts ----------------------------------------------------------------------

function renderGifts() {
  const count = Number($("gift-count").value) || 1;
  $("gifts").replaceChildren(
    ...state.gifts.map((gift) => {
      const cost = gift.coins * count;
      const affordable = state.coins !== null && state.coins >= cost;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: `gift${affordable ? "" : " unaffordable"}`,
            dataset: { gift: gift.id },
            title: affordable ? `Send ${gift.name} ×${count}` : "Not enough coins",
            disabled: !state.token || !state.you || !state.live,
          },
          el("img", { src: gift.image || `/static/gifts/${gift.id}.svg`, alt: "" }),
          el("span", { class: "gift-name" }, gift.name),
          el("span", { class: "gift-price" }, coinIcon(), " ", formatNumber(gift.coins)),
        ),
      );
    }),
  );
}

async function loadGifts() {
  try {
    state.gifts = (await api("/v1/gifts")).gifts;
    renderGifts();
  } catch (error) {
    showError(error);
  }
}

async function sendGift(giftId) {
  const count = Number($("gift-count").value) || 1;
  // the price shown: if it changed meanwhile, the server refuses and charges nothing
  const shown = state.gifts.find((g) => g.id === giftId);
  const command = shown ? { gift: giftId, count, coins: shown.coins } : { gift: giftId, count };
  try {
    const ack = await state.connection.send("send_gift", command);
    setBalance(ack.balance.coins);
  } catch (error) {
    showError(error instanceof LiveError ? error : { code: "internal", message: String(error) });
    if (error instanceof LiveError && error.code === "price_changed") loadGifts();
  }
}

// -- likes and chat -------------------------------------------------------------------

function tapLike() {
  if (!state.token) return toast(describeError("unauthorized"));
  state.likesQueued += 1;
  floatHeart();
  if (state.likeTimer) return;
  state.likeTimer = setTimeout(async () => {
    const count = Math.min(100, state.likesQueued);
    state.likesQueued = 0;
    state.likeTimer = null;
    try {
      const ack = await state.connection.send("like", { count });
      $("like-count").textContent = formatNumber(ack.total);
    } catch (error) {
      showError(error);
    }
  }, LIKE_BATCH_MS);
}

function floatHeart() {
  const heart = el("span", { class: "heart" }, "❤");
  heart.style.left = `${20 + Math.random() * 60}%`;
  $("hearts").append(heart);
  setTimeout(() => heart.remove(), 1_600);
}

async function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (!state.token) return toast(describeError("unauthorized"));
  try {
    await state.connection.send("chat", { text });
    input.value = "";
  } catch (error) {
    showError(error);
  }
}

function chatLine(kind, sender, text, id) {
  const line = el(
    "li",
    { class: kind, dataset: { id: id || "", user: (sender && sender.id) || "" } },
    sender ? el("b", {}, displayName(sender)) : null,
    " ",
    el("span", {}, text),
  );
  if (sender) decorateName(line.querySelector("b"), sender); // items: badge, name style
  $("chat").append(line);
  while ($("chat").children.length > CHAT_LINES) $("chat").firstChild.remove();
  $("chat").scrollTop = $("chat").scrollHeight;
}

// -- the room's events -------------------------------------------------------------

function showGift(event) {
  const comboId = event.combo.id;
  const big = event.gift.coins * event.combo.count >= BIG_COINS;
  let alert = state.alerts.get(comboId);
  if (!alert) {
    alert = { node: decorateAlert(giftAlert(event, { big }), event.sender), timer: null }; // items
    alert.node.classList.add("enter");
    state.alerts.set(comboId, alert);
    $("stage-alerts").append(alert.node);
    while ($("stage-alerts").children.length > 4) $("stage-alerts").firstChild.remove();
  } else {
    updateAlertCount(alert.node, event.combo.count);
  }
  clearTimeout(alert.timer);
  const stay = event.combo.end ? (big ? BIG_ALERT_MS : ALERT_MS) : 5_000;
  alert.timer = setTimeout(() => {
    state.alerts.delete(comboId);
    alert.node.classList.add("leave");
    setTimeout(() => alert.node.remove(), 400);
  }, stay);
  if (event.combo.end) {
    alert.node.classList.add("ended");
    chatLine("gift-line", event.sender, `sent ${event.gift.name} ×${event.combo.count}`);
  }
}

function setGoal(goal) {
  renderGoal($("goal"), goal);
}

function welcome(welcome, { resumed }) {
  const room = welcome.room;
  $("room-title").textContent = room.title || room.id;
  $("creator-name").textContent = displayName(room.creator);
  $("creator-avatar").replaceChildren(avatar(room.creator));
  setLive(room.live);
  state.you = welcome.you;
  renderAccount();
  if (state.token && !welcome.you) toast(describeError("unauthorized"));
  if (!resumed) {
    $("viewer-count").textContent = formatNumber(welcome.viewers);
    leaderboardView($("leaderboard"), welcome.leaderboard || [], 10);
    setGoal(welcome.goal);
  }
  streamEffect.show(welcome.stream_effect || null); // items: the creator's effect
}

function setLive(live) {
  state.live = live;
  renderGifts();
  $("live-badge").textContent = live ? "LIVE" : "OFFLINE";
  $("live-badge").classList.toggle("live", live);
  $("ended").hidden = live;
}

function onEvent(event) {
  if (typeof event.seq === "number") {
    state.seqs.push(event.seq);
    if (state.seqs.length > 10_000) state.seqs.splice(0, 5_000);
    document.body.dataset.lastSeq = String(event.seq);
  }
  switch (event.type) {
    case "gift":
      showGift(event);
      if (state.you && event.sender.id === state.you.id && event.count > 0) refreshBalanceSoon();
      break;
    case "like":
      $("like-count").textContent = formatNumber(event.total);
      if (!state.you || event.sender.id !== state.you.id) floatHeart();
      break;
    case "chat":
      chatLine("comment", event.sender, event.text, event.id);
      break;
    case "chat_deleted":
      for (const line of $("chat").querySelectorAll("li.comment")) {
        if (line.dataset.id === event.id && line.dataset.user === event.user) line.remove();
      }
      break;
    case "join":
      chatLine("join", null, event.users ? `${event.users.map(displayName).join(", ")} joined` : `${formatNumber(event.count)} viewers joined`);
      break;
    case "viewers":
      $("viewer-count").textContent = formatNumber(event.count);
      break;
    case "leaderboard":
      leaderboardView($("leaderboard"), event.top, 10);
      break;
    case "goal":
      setGoal(event);
      break;
    case "goal_reached":
      $("goal").classList.add("celebrate");
      toast(`Goal reached: ${event.title}!`, "ok");
      break;
    case "room_ended":
      setLive(false);
      streamEffect.show(null);
      break;
    case "catalog": // gifts or prices changed: show the new ones
      loadGifts();
      if (!$("item-shop").hidden) itemShop.refresh().catch(showError); // items
      break;
    case "entrance": // items: someone joined with an entrance effect
      playEntrance($("stage-alerts"), event, { displayName });
      break;
    case "stream_effect": // items: the creator's effect over the video
      streamEffect.show(event.effect);
      break;
    default:
      break;
  }
}

let balanceTimer = null;
function refreshBalanceSoon() {
  // A gift sent from another tab or device: the wallet is the truth.
  clearTimeout(balanceTimer);
  balanceTimer = setTimeout(refreshBalance, 500);
}

function connect() {
  if (state.connection) state.connection.close();
  state.connection = new LiveRoom({
    roomId,
    token: state.token,
    onEvent,
    onWelcome: welcome,
    onStatus(status, detail) {
      $("status").textContent = status;
      $("status").dataset.status = status;
      if (status === "error" && detail) showError(detail);
      if (status === "closed" && detail) {
        if (detail.code === 4010) setLive(false);
        else if (detail.code === 4004) toast(describeError("not_found"));
        else if (detail.code === 1008 && state.token) toast(describeError("unauthorized"));
      }
    },
  });
  state.connection.open();
  window.liveWatch = { state, connection: state.connection, itemShop };
}

// -- items (shop.js, badges.js) ---------------------------------------------------------

const streamEffect = mountStreamEffect($("stage")); // items: over the video area

const itemShop = mountItemShop({
  root: $("item-shop"),
  getToken: () => state.token,
  roomId,
  onBalance: setBalance,
  onError: showError,
  preview: () => state.you,
});

// -- start ----------------------------------------------------------------------------

async function start() {
  state.token = takeToken();
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    state.token = token;
    $("token-input").value = "";
    connect();
    refreshBalance();
    renderAccount();
  });
  $("signout").addEventListener("click", signOut);
  $("buy-open").addEventListener("click", openShop);
  $("buy-close").addEventListener("click", () => ($("shop").hidden = true));
  $("items-open").addEventListener("click", () => itemShop.open()); // items
  $("region").addEventListener("change", loadPackages);
  $("packages").addEventListener("click", (event) => {
    const button = event.target.closest("button.buy");
    if (button) buy(button.dataset.package, button);
  });
  $("gifts").addEventListener("click", (event) => {
    const button = event.target.closest("button.gift");
    if (!button) return;
    const gift = state.gifts.find((g) => g.id === button.dataset.gift);
    const count = Number($("gift-count").value) || 1;
    if (gift && state.coins !== null && state.coins < gift.coins * count) {
      showError({ code: "insufficient_funds" });
      return;
    }
    sendGift(button.dataset.gift);
  });
  $("gift-count").addEventListener("change", renderGifts);
  $("like").addEventListener("click", tapLike);
  $("chat-form").addEventListener("submit", sendChat);
  for (const region of ["US", "GB", "EU", "IN", "BR"]) $("region").append(el("option", {}, region));
  renderAccount();
  await loadGifts();
  connect();
  refreshBalance();
}

start();
