// What others see of a user's in-app items: the equipped badge and name style in
// the `sender`/`user` profile of gift, chat, like and join events, and the
// `entrance` event's effect. The watch page and the overlay use it.

import { el } from "./common.js";

const ENTRANCE_MS = 4_000;
const COLOR = /^#[0-9a-fA-F]{6}$/;
const BUBBLE = /^[a-z][a-z0-9_-]{0,31}$/;
const POSITIONS = new Set([
  "top-left", "top-center", "top-right",
  "center-left", "center", "center-right",
  "bottom-left", "bottom-center", "bottom-right",
]);

/** The pages' element builder (common.js), under the name the item scripts use. */
export const make = el;

/** The user's badge as an image (null when none is equipped). */
export function badgeIcon(user) {
  const badge = user && user.badge;
  if (!badge || typeof badge.image !== "string") return null;
  return make("img", {
    class: "item-badge",
    src: badge.image,
    alt: badge.name || "badge",
    title: badge.name || "",
    dataset: { item: badge.id || "" },
  });
}

/**
 * Show `user`'s badge before `nameNode` and paint the name in their name style
 * (colour, chat bubble). A user without items is left as they are.
 */
export function decorateName(nameNode, user) {
  if (!nameNode || !user) return nameNode;
  const icon = badgeIcon(user);
  if (icon && !nameNode.previousElementSibling?.classList.contains("item-badge")) {
    nameNode.before(icon);
  }
  const style = user.name_style;
  if (style) {
    nameNode.classList.add("styled-name");
    if (COLOR.test(style.color || "")) nameNode.style.color = style.color;
    if (BUBBLE.test(style.bubble || "")) nameNode.dataset.bubble = style.bubble;
    nameNode.dataset.nameStyle = style.id || "";
  }
  return nameNode;
}

/** Decorate the sender's name inside a gift alert (`.gift-sender .name`). */
export function decorateAlert(alertNode, sender) {
  if (!alertNode) return alertNode;
  decorateName(alertNode.querySelector(".gift-sender .name"), sender);
  return alertNode;
}

/** The effect's artwork: an image for still and animated image formats, a video for MP4/WebM. */
function effectArt(effect) {
  const asset = effect.asset || { url: effect.image, format: "svg" };
  if (asset.format === "mp4-alpha" || asset.format === "webm-alpha") {
    return make("video", { class: "entrance-art", src: asset.url, autoplay: true, muted: true, playsinline: true });
  }
  // Lottie JSON needs a player the page may not have: its still image stands in.
  const url = asset.format === "lottie" ? effect.image : asset.url;
  return make("img", { class: "entrance-art", src: url, alt: "" });
}

/**
 * Play an `entrance` event in `container`: the effect's animation with the
 * user's (decorated) name, removed after a few seconds.
 */
export function playEntrance(container, event, { displayName = defaultName, ms = ENTRANCE_MS } = {}) {
  if (!container || !event || !event.user || !event.effect) return null;
  const name = make("span", { class: "name" }, displayName(event.user));
  const node = make(
    "div",
    { class: "entrance", dataset: { user: event.user.id || "", effect: event.effect.id || "" } },
    effectArt(event.effect),
    make("div", { class: "entrance-text" }, name, " joined"),
  );
  decorateName(name, event.user);
  container.append(node);
  while (container.children.length > 3) container.firstChild.remove();
  setTimeout(() => {
    node.classList.add("leave");
    setTimeout(() => node.remove(), 400);
  }, ms);
  return node;
}

function defaultName(user) {
  return user.display_name || user.username || user.id || "someone";
}

/**
 * The overlay's entrance widget, configured like the others by the page's
 * query: `entrances=0` turns it off, `entrances_at=<position>` places it
 * (default `center`). Returns `{ play(event) }`.
 */
export function mountEntrances(canvas, query) {
  const enabled = query.get("entrances") !== "0";
  const wanted = query.get("entrances_at") || "center";
  const at = POSITIONS.has(wanted) ? wanted : "center";
  const section = make("section", {
    id: "entrances",
    class: `widget at-${at}`,
    dataset: { widget: "entrances" },
    "aria-live": "polite",
  });
  section.hidden = !enabled;
  if (canvas) canvas.append(section);
  return {
    section,
    play(event) {
      return enabled ? playEntrance(section, event) : null;
    },
  };
}

/**
 * The creator's stream effect (`welcome.stream_effect`, `stream_effect` events):
 * a layer over the whole frame (`at` "full") or in one corner that shows the
 * effect's animation until it changes or is cleared. `enabled` false keeps it
 * hidden. Returns `{ layer, show(effect) }`; `show(null)` clears it.
 */
export function mountStreamEffect(container, { enabled = true, at = "full" } = {}) {
  const where = at === "full" || POSITIONS.has(at) ? at : "full";
  const layer = make("div", {
    id: "stream-effect",
    class: where === "full" ? "stream-effect full" : `stream-effect widget at-${where}`,
    dataset: { widget: "stream_effect", effect: "" },
    "aria-hidden": "true",
  });
  layer.hidden = true;
  if (container) container.prepend(layer);
  return {
    layer,
    show(effect) {
      const id = (effect && effect.id) || "";
      if (layer.dataset.effect === id) return; // unchanged: the animation keeps playing
      layer.dataset.effect = id;
      layer.replaceChildren();
      if (effect) {
        const art = effectArt(effect);
        art.className = "stream-effect-art";
        layer.append(art);
      }
      layer.hidden = !enabled || !effect;
    },
  };
}
