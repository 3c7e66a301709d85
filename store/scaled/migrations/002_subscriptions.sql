-- Creators' event subscriptions, their delivery queues and integration apps.
-- A delivery stays queued until its callback accepts it (or the subscription
-- is deleted or disabled); ``position`` orders each subscription's queue.

CREATE TABLE subscriptions (
    id               text PRIMARY KEY,
    owner_id         text NOT NULL,
    room_id          text NOT NULL,
    types            text NOT NULL,            -- comma-separated event types
    callback         text NOT NULL,
    secret           text NOT NULL,
    status           text NOT NULL,            -- enabled, paused, disabled
    app_id           text NOT NULL,
    created_at       bigint NOT NULL,
    failing_since    bigint,
    next_attempt_at  bigint NOT NULL,
    last_error       text NOT NULL,
    disabled_reason  text NOT NULL,
    lease_owner      text NOT NULL DEFAULT '',
    lease_until      bigint NOT NULL DEFAULT 0
);

CREATE INDEX subscriptions_owner ON subscriptions (owner_id, created_at);
CREATE INDEX subscriptions_due ON subscriptions (next_attempt_at) WHERE status = 'enabled';

CREATE TABLE subscription_queue (
    position         bigserial PRIMARY KEY,
    subscription_id  text NOT NULL,
    message_id       text NOT NULL,
    source           text NOT NULL,
    type             text NOT NULL,
    body             text NOT NULL,
    created_at       bigint NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    UNIQUE (subscription_id, source)
);

CREATE INDEX subscription_queue_head ON subscription_queue (subscription_id, position);

CREATE TABLE subscription_apps (
    client_id    text PRIMARY KEY,
    owner_id     text NOT NULL,
    name         text NOT NULL,
    secret_hash  text NOT NULL,
    created_at   bigint NOT NULL
);

CREATE INDEX subscription_apps_owner ON subscription_apps (owner_id, created_at);
