// Types of the live room client (index.js) and of the protocol's events
// (docs/PROTOCOL.md). Fields the protocol adds later are allowed everywhere.

/** An equipped badge: show `image` next to the name. */
export interface Badge {
  id: string;
  name: string;
  image: string;
}

/** An equipped name style: a colour (`#rrggbb`) and/or a chat bubble style name. */
export interface NameStyle {
  id: string;
  color?: string;
  bubble?: string;
}

export interface User {
  id: string;
  username: string;
  display_name: string;
  avatar: string;
  /** The user's equipped badge, in gift, chat, like, join and entrance events and `welcome.you`. */
  badge?: Badge;
  /** The user's equipped name style, where `badge` travels. */
  name_style?: NameStyle;
}

export type ItemKind = "badge" | "name_style" | "entrance_effect" | "creator_effect";

/** An in-app item as `GET /v1/items` lists it. */
export interface ItemInfo {
  id: string;
  kind: ItemKind | string;
  name: string;
  coins: number;
  image: string;
  /** Days one purchase lasts; null or absent: permanent. */
  duration_days?: number | null;
  /** The animation (an entrance effect always has one). */
  asset?: { url: string; format: string };
  color?: string;
  bubble?: string;
  /** Percent of the price the room's creator earns when bought while watching. */
  creator_share?: number;
}

export interface RoomEventBase {
  type: string;
  /** Room events: the room's event number (PROTOCOL.md section 3). */
  seq?: number;
  /** Room events and overlay test events: when the server accepted it (ms). */
  ts?: number;
  [field: string]: unknown;
}

export interface GiftInfo {
  id: string;
  name: string;
  coins: number;
  animation: string;
  image: string;
  streakable: boolean;
  tier?: number;
  translations?: Record<string, string>;
  asset?: { url: string; format: string };
  sound?: string;
}

export interface GiftEvent extends RoomEventBase {
  type: "gift";
  tx: string;
  gift: GiftInfo;
  sender: User;
  count: number;
  combo: { id: string; count: number; end: boolean };
  diamonds: number;
  /** Overlays only: a creator's test alert, no money moved. */
  test?: boolean;
  /** Overlays only: creator-only detail. */
  overlay?: {
    combo: { coins: number; diamonds: number };
    stream: { gifts: number; coins: number; diamonds: number };
  };
}

export interface LikeEvent extends RoomEventBase {
  type: "like";
  sender: User;
  count: number;
  total: number;
}

export interface ChatEvent extends RoomEventBase {
  type: "chat";
  id: string;
  sender: User;
  text: string;
}

export interface ChatDeletedEvent extends RoomEventBase {
  type: "chat_deleted";
  id: string;
  user: string;
}

export interface JoinEvent extends RoomEventBase {
  type: "join";
  users?: User[];
  count?: number;
}

/** A viewer with an entrance effect equipped joined (fresh joins only): play `effect.asset`. */
export interface EntranceEvent extends RoomEventBase {
  type: "entrance";
  user: User;
  effect: ItemInfo;
}

/** What a room shows over the video: its creator's equipped creator effect. */
export interface StreamEffect {
  id: string;
  name: string;
  /** A still picture of the effect. */
  image: string;
  /** The animation to play over the video, when the item has one. */
  asset?: { url: string; format: string };
}

/** The creator's effect over the stream changed (null: show none any more). */
export interface StreamEffectEvent extends RoomEventBase {
  type: "stream_effect";
  effect: StreamEffect | null;
}

export interface ViewersEvent extends RoomEventBase {
  type: "viewers";
  count: number;
}

export interface LeaderboardEntry {
  user: User;
  coins: number;
}

export interface LeaderboardEvent extends RoomEventBase {
  type: "leaderboard";
  top: LeaderboardEntry[];
}

export interface Goal {
  target: number;
  progress: number;
  title: string;
  reached: boolean;
}

export interface GoalEvent extends RoomEventBase, Goal {
  type: "goal";
}

export interface GoalReachedEvent extends RoomEventBase {
  type: "goal_reached";
  target: number;
  progress: number;
  title: string;
}

export interface RoomEndedEvent extends RoomEventBase {
  type: "room_ended";
}

export interface CatalogEvent extends RoomEventBase {
  type: "catalog";
  version: number;
}

/**
 * Paced connections only (`pace: true`): one gift to show, or a summary of the
 * smallest gifts of a burst. Not a room event: no `seq`, never replayed. Send
 * `alertDone(alert)` when it finished playing; the next comes then.
 */
export type AlertEvent =
  | { type: "alert"; id: string; kind: "gift"; coins: number; gift: GiftEvent }
  | {
      type: "alert";
      id: string;
      kind: "summary";
      coins: number;
      /** How many gifts it stands for. */
      gifts: number;
      /** Up to 10 of their senders. */
      senders: User[];
      /** Gifts among them from senders not in `senders`. */
      more_senders: number;
    };

export interface Welcome {
  type: "welcome";
  session: string;
  room: {
    id: string;
    creator: User;
    live: boolean;
    title: string;
    stream_id?: number;
    started_at?: number | null;
    ended_at?: number | null;
  };
  you: User | null;
  seq: number;
  viewers: number;
  leaderboard: LeaderboardEntry[];
  goal: Goal | null;
  resumed: boolean;
  /** Present while the room's creator has a creator effect equipped and is live. */
  stream_effect?: StreamEffect;
  overlay?: { stream: { gifts: number; coins: number; diamonds: number; likes: number; peak_viewers: number } };
  catalog_version?: number;
  [field: string]: unknown;
}

export interface Ack {
  type: "ack";
  id: string;
  [field: string]: unknown;
}

export interface GiftAck extends Ack {
  tx: string;
  balance: { coins: number };
  replayed: boolean;
}

export interface ErrorEvent {
  type: "error";
  id: string | null;
  code: string;
  message: string;
}

/** The events a room delivers, by type. */
export interface RoomEvents {
  gift: GiftEvent;
  like: LikeEvent;
  chat: ChatEvent;
  chat_deleted: ChatDeletedEvent;
  join: JoinEvent;
  entrance: EntranceEvent;
  stream_effect: StreamEffectEvent;
  viewers: ViewersEvent;
  leaderboard: LeaderboardEvent;
  goal: GoalEvent;
  goal_reached: GoalReachedEvent;
  room_ended: RoomEndedEvent;
  catalog: CatalogEvent;
  alert: AlertEvent;
}

export type RoomEvent = RoomEvents[keyof RoomEvents] | RoomEventBase;

export type Status = "idle" | "connecting" | "live" | "reconnecting" | "error" | "closed";

export interface WelcomeInfo {
  /** The events missed since the last connection follow. */
  resumed: boolean;
  /** The first welcome of this room object. */
  first: boolean;
  /** A fresh snapshot after a drop: events in between were not replayed; replace your state. */
  snapshot: boolean;
}

export interface ClosedDetail {
  code: number;
  reason: string;
  /** The error event the server sent before closing, if any. */
  error: ErrorEvent | null;
}

export interface MsgpackCodec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

export interface LiveRoomOptions {
  /** The server, `https://live.example` or `ws://127.0.0.1:8000`; in a browser, the page's origin by default. */
  url?: string;
  roomId: string;
  /** A user's access token (JWT). Without a token nor a key: a guest. */
  token?: string;
  /** The room's overlay key: a read-only overlay connection. */
  overlayKey?: string;
  /** Ask for one `alert` event at a time, biggest gift first; answer each with `alertDone`. */
  pace?: boolean;
  /** `msgpack` loads the optional `@msgpack/msgpack` package (or uses `msgpack`). */
  encoding?: "json" | "msgpack";
  /** A WebSocket class: the platform's by default, or for example the `ws` package's. */
  WebSocket?: any;
  /** A MessagePack codec to use instead of loading `@msgpack/msgpack`. */
  msgpack?: MsgpackCodec | null;
  /** Gives a fresh token of the same user: used a minute before `exp` (the `auth` command), after a command refused as `unauthorized`, and to reconnect after 4001. */
  refreshToken?: (() => Promise<string> | string) | null;
  /** Come back after the stream ended (4010) too: overlays stay between streams. */
  persistent?: boolean;
  onEvent?: ((event: RoomEvent) => void) | null;
  onWelcome?: ((welcome: Welcome, info: WelcomeInfo) => void) | null;
  onStatus?: ((status: Status, detail?: any) => void) | null;
  /** For tests: the source of the backoff's jitter. */
  random?: () => number;
  firstDelayMs?: number;
  maxDelayMs?: number;
  stableAfterMs?: number;
  replyTimeoutMs?: number;
  endedDelayMs?: number;
  refreshBeforeMs?: number;
}

export const RECONNECT_CODES: Set<number>;
export const CLIENT_RECONNECT: number;
export const SUBPROTOCOLS: { json: string; msgpack: string };

export class LiveError extends Error {
  constructor(
    code: string,
    message: string,
    detail?: { id?: string | null; command?: Record<string, unknown> | null; closeCode?: number | null },
  );
  /** A protocol error code (`insufficient_funds`, `price_changed`, …), or `connection_lost`, `timeout`. */
  code: string;
  id: string | null;
  command: Record<string, unknown> | null;
  closeCode: number | null;
  readonly retryable: boolean;
}

export function newId(prefix?: string): string;
export function tokenExpiry(token: string): number | null;

type Listener<A extends unknown[]> = (...args: A) => void;

export interface LiveRoomEvents extends Record<string, unknown[]> {
  event: [RoomEvent];
  welcome: [Welcome, WelcomeInfo];
  snapshot: [Welcome];
  status: [Status, any];
  error: [ErrorEvent];
  closed: [ClosedDetail];
}

export class LiveRoom implements AsyncIterable<RoomEvent | Welcome> {
  constructor(options: LiveRoomOptions);
  readonly roomId: string;
  token: string;
  /** The last `seq` seen: a reconnect resumes after it. */
  lastSeq: number | null;
  welcome: Welcome | null;
  status: Status;
  /** The close code after which the room won't come back, or null. */
  finalClose: number | null;

  on<K extends keyof RoomEvents>(type: K, listener: Listener<[RoomEvents[K]]>): () => void;
  on<K extends keyof LiveRoomEvents>(type: K, listener: Listener<LiveRoomEvents[K]>): () => void;
  off(type: string, listener: (...args: any[]) => void): void;
  events(): AsyncGenerator<RoomEvent | Welcome, void, void>;
  [Symbol.asyncIterator](): AsyncGenerator<RoomEvent | Welcome, void, void>;

  /** The WebSocket URL of the next connection. */
  url(): URL;
  /** Connect; resolves with the first welcome, rejects with a LiveError if the room closes first. */
  connect(): Promise<Welcome>;
  /** Connect without waiting for the welcome. */
  open(): Promise<void>;
  /** Drop the connection and resume at once. */
  reconnect(): void;
  /** Close for good. */
  close(): void;

  /** Renew the token now with `refreshToken`. */
  renew(): Promise<Ack | null>;
  /** Renew the connection's token (`auth`) and use it for every reconnect. */
  renewToken(token: string): Promise<Ack | null>;
  send(type: string, fields?: Record<string, unknown>, options?: { id?: string; renewOnExpiry?: boolean }): Promise<Ack>;
  sendGift(gift: string, options?: { count?: number; coins?: number; id?: string }): Promise<GiftAck>;
  like(count?: number): Promise<Ack & { total: number }>;
  chat(text: string): Promise<Ack>;
  ping(): Promise<Ack>;
  /** A paced `alert` finished playing: the server sends the next one. */
  alertDone(alert: string | { id: string }): Promise<Ack>;
}
