// The creator's overlay: /overlay/{room_id}?key=<overlay key>, a transparent
// 1920x1080 page for a streaming software's browser source. Query parameters
// are listed in docs/OPERATIONS.md ("Overlay and watch pages").

import { LiveRoom } from "/static/client/index.js";
import * as ui from "./common.js";
// items: badges, entrance effects, the creator's stream effect
import { decorateAlert, mountEntrances, mountStreamEffect } from "./badges.js";

const POSITIONS = new Set([
  "top-left", "top-center", "top-right",
  "center-left", "center", "center-right",
  "bottom-left", "bottom-center", "bottom-right",
]);
const DEFAULT_AT = { alerts: "top-center", goal: "top-left", top: "top-right", events: "bottom-left" };
const OPEN_STREAK_MAX_MS = 20_000; // an open streak gives way to waiting alerts after this
const MAX_WAITING = 50;

function numberParam(query, name, fallback, min, max) {
  const value = Number(query.get(name));
  if (!query.has(name) || !Number.isFinite(value)) return fallback;
  return Math.min(max, Math.max(min, value));
}

export function readOptions(query) {
  const widgets = new Set(
    (query.get("widgets") || "alerts,goal,top").split(",").map((w) => w.trim()).filter(Boolean),
  );
  const at = {};
  for (const widget of Object.keys(DEFAULT_AT)) {
    const wanted = query.get(`${widget}_at`);
    at[widget] = POSITIONS.has(wanted) ? wanted : DEFAULT_AT[widget];
  }
  return {
    key: query.get("key") || "",
    widgets,
    at,
    duration: numberParam(query, "duration", 5, 1, 60) * 1000,
    bigCoins: numberParam(query, "big_coins", 1000, 1, 1e9),
    bigDuration: numberParam(query, "big_duration", 10, 1, 120) * 1000,
    lanes: Math.round(numberParam(query, "lanes", 2, 1, 4)),
    events: Math.round(numberParam(query, "events", 6, 1, 20)),
    scale: numberParam(query, "scale", 1, 0.25, 4),
    test: query.get("test") !== "0",
    pace: query.get("pace") === "1",
  };
}

/** Alerts on screen (up to `lanes` at once) and the ones waiting, one per combo. */
class AlertQueue {
  constructor(root, options) {
    this.root = root;
    this.options = options;
    this.byCombo = new Map(); // combo id -> alert on screen or waiting
    this.waiting = [];
    this.finished = new Set(); // combos whose streak ended and was shown
  }

  isBig(event) {
    return event.gift.coins * event.combo.count >= this.options.bigCoins;
  }

  gift(event) {
    const comboId = event.combo.id;
    let alert = this.byCombo.get(comboId);
    if (!alert) {
      if (this.finished.has(comboId)) return; // its end was shown already
      alert = { comboId, event, ended: false, node: null, shownAt: 0, timer: null };
      this.byCombo.set(comboId, alert);
      this.waiting.push(alert);
      while (this.waiting.length > MAX_WAITING) this.drop(this.waiting.shift());
    }
    alert.event = { ...event, combo: { ...event.combo, count: Math.max(alert.event.combo.count, event.combo.count) } };
    if (event.combo.end) alert.ended = true;
    if (alert.node) {
      ui.updateAlertCount(alert.node, alert.event.combo.count);
      this.setBig(alert);
      if (alert.ended) this.schedule(alert);
    }
    this.pump();
  }

  setBig(alert) {
    const big = this.isBig(alert.event);
    alert.node.classList.toggle("big", big);
    alert.node.querySelector(".gift-art").classList.toggle("gift-big", big);
  }

  onScreen() {
    return [...this.byCombo.values()].filter((a) => a.node);
  }

  pump() {
    let showing = this.onScreen();
    while (showing.length < this.options.lanes && this.waiting.length) {
      const alert = this.waiting.shift();
      alert.node = decorateAlert(ui.giftAlert(alert.event, { big: this.isBig(alert.event) }), alert.event.sender);
      alert.node.classList.add("enter");
      alert.shownAt = Date.now();
      this.root.append(alert.node);
      if (alert.ended) this.schedule(alert);
      else alert.timer = setTimeout(() => this.tooLong(alert), OPEN_STREAK_MAX_MS);
      showing = this.onScreen();
    }
  }

  /** The streak ended: keep it up for the alert duration (longer for big ones). */
  schedule(alert) {
    clearTimeout(alert.timer);
    const stay = this.isBig(alert.event) ? this.options.bigDuration : this.options.duration;
    alert.node.classList.add("ended");
    alert.timer = setTimeout(() => this.dismiss(alert), stay);
  }

  tooLong(alert) {
    if (this.waiting.length) this.dismiss(alert, { finished: false });
    else alert.timer = setTimeout(() => this.tooLong(alert), 1_000);
  }

  dismiss(alert, { finished = true } = {}) {
    clearTimeout(alert.timer);
    this.byCombo.delete(alert.comboId);
    if (finished) this.remember(alert.comboId);
    const node = alert.node;
    node.classList.add("leave");
    setTimeout(() => node.remove(), 400);
    this.pump();
  }

  drop(alert) {
    this.byCombo.delete(alert.comboId);
    if (alert.ended) this.remember(alert.comboId);
  }

  remember(comboId) {
    this.finished.add(comboId);
    if (this.finished.size > 2_000) this.finished.delete(this.finished.values().next().value);
  }
}

/**
 * Paced alerts (`pace=1`): the server sends one `alert` at a time, biggest gift
 * first, the overflow of a burst as one summary; each is shown for the alert
 * duration, then acknowledged with `alert_done` so the server sends the next.
 */
class PacedAlerts {
  constructor(root, options, connection) {
    this.root = root;
    this.options = options;
    this.connection = connection;
    this.shown = 0;
  }

  alert(alert) {
    if (alert.kind === "gift" && alert.gift.test && !this.options.test) {
      this.done(alert); // counted in skippedTests as its gift event
      return;
    }
    const big = alert.coins >= this.options.bigCoins;
    const node = alert.kind === "gift"
      ? decorateAlert(ui.giftAlert(alert.gift, { big }), alert.gift.sender)
      : this.summary(alert);
    node.classList.add("enter", "ended");
    node.dataset.alert = alert.id;
    this.root.append(node);
    this.shown += 1;
    setTimeout(() => {
      node.classList.add("leave");
      setTimeout(() => node.remove(), 400);
      this.done(alert);
    }, big ? this.options.bigDuration : this.options.duration);
  }

  summary(alert) {
    const names = alert.senders.map(ui.displayName);
    const others = alert.more_senders ? ` and ${ui.formatNumber(alert.more_senders)} more` : "";
    return ui.el(
      "div",
      { class: "gift-alert summary", dataset: { gifts: String(alert.gifts) } },
      ui.el(
        "div",
        { class: "gift-text" },
        ui.el("div", { class: "gift-sender" }, `${names.join(", ")}${others}`),
        ui.el("div", { class: "gift-line" }, `sent ${ui.formatNumber(alert.gifts)} more gifts`),
      ),
      ui.el("div", { class: "gift-count" }, `${ui.formatNumber(alert.coins)} coins`),
    );
  }

  done(alert) {
    // a dropped connection forgets the alert anyway: nothing to retry
    this.connection.alertDone(alert).catch(() => {});
  }
}

function placeWidgets(options) {
  for (const section of document.querySelectorAll(".widget")) {
    const widget = section.dataset.widget;
    section.hidden = !options.widgets.has(widget);
    section.classList.add(`at-${options.at[widget]}`);
  }
  document.documentElement.style.setProperty("--overlay-scale", String(options.scale));
}

function main() {
  const options = readOptions(ui.params());
  const roomId = ui.roomIdFromPath("/overlay/");
  placeWidgets(options);
  const alertsRoot = document.getElementById("alerts");
  const alerts = new AlertQueue(alertsRoot, options);
  let paced = null; // set once the connection exists (pace=1)
  const goal = document.getElementById("goal");
  const topList = document.querySelector("#top ol");
  const events = document.querySelector("#events ul");
  const notice = document.getElementById("notice");
  const showGoal = options.widgets.has("goal");
  const entrances = mountEntrances(document.getElementById("canvas"), ui.params()); // items
  const streamEffect = mountStreamEffect(document.getElementById("canvas"), {
    enabled: ui.params().get("stream_effect") !== "0",
    at: ui.params().get("stream_effect_at") || "full",
  });

  function setGoal(value) {
    ui.renderGoal(goal, value);
    if (!showGoal) goal.hidden = true;
  }

  function showTop(top) {
    ui.leaderboardView(topList, top, 3);
    topList.parentElement.classList.toggle("empty", top.length === 0);
  }

  function recent(text, kind) {
    events.prepend(ui.el("li", { class: `recent ${kind}` }, text));
    while (events.children.length > options.events) events.lastChild.remove();
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  const connection = new LiveRoom({
    roomId,
    overlayKey: options.key,
    pace: options.pace,
    persistent: true,
    onWelcome(welcome, { resumed }) {
      if (resumed) return; // the missed events follow
      setGoal(welcome.goal);
      showTop(welcome.leaderboard || []);
      streamEffect.show(welcome.stream_effect || null);
    },
    onStatus(status, detail) {
      document.body.dataset.status = status;
      if (status === "live") say("");
      if (status === "closed" && detail && detail.code === 1008) {
        say("This overlay's key is no longer valid: copy the new overlay link.");
      } else if (status === "closed" && detail && detail.code === 4004) {
        say("No such room.");
      }
    },
    onEvent(event) {
      switch (event.type) {
        case "gift":
          if (event.test && !options.test) {
            window.liveOverlay.skippedTests += 1;
            return;
          }
          if (!paced) alerts.gift(event);
          if (event.combo.end) {
            recent(`${ui.displayName(event.sender)} sent ${event.gift.name} ×${event.combo.count}`, "gift");
          }
          break;
        case "alert":
          if (paced) paced.alert(event);
          break;
        case "goal":
          setGoal(event);
          break;
        case "goal_reached":
          goal.classList.add("celebrate");
          setTimeout(() => goal.classList.remove("celebrate"), 6_000);
          recent(`Goal reached: ${event.title}`, "goal");
          break;
        case "leaderboard":
          showTop(event.top);
          break;
        case "join":
          if (event.users) recent(`${event.users.map(ui.displayName).join(", ")} joined`, "join");
          else recent(`${ui.formatNumber(event.count)} viewers joined`, "join");
          break;
        case "room_ended":
          setGoal(null);
          streamEffect.show(null);
          break;
        case "stream_effect": // items: the creator's effect over the stream
          streamEffect.show(event.effect);
          break;
        case "entrance": // items: an entrance effect (widget `entrances`)
          entrances.play(event);
          break;
        default:
          break;
      }
    },
  });
  if (!options.key) {
    say("Add ?key=<overlay key> to this page's address.");
    return;
  }
  if (options.pace) paced = new PacedAlerts(alertsRoot, options, connection);
  window.liveOverlay = { connection, alerts, paced, entrances, streamEffect, skippedTests: 0 };
  connection.open();
}

main();
