"""One typed settings object, read from ``LIVE_*`` environment variables.

Every knob of the server lives here with a safe default, so ``live serve`` works
on a bare machine and production is configured by environment alone.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from live.identity.keys import ALGORITHMS, family_of, load_public_key_file
from live.limits import own_origin, parse_origins
from live.money_config import (
    parse_products,
    parse_promotions,
    parse_rate,
    parse_regions,
    parse_secrets,
)
from protocol import Limits
from store.domain.accounts import MoneyPolicy
from store.domain.catalog import Catalog
from store.roles import EngineConfig


class SettingsError(ValueError):
    """A setting is missing or invalid; the server refuses to start."""

    code = "bad_config"


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {raw!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    env: str = "dev"
    """``dev`` or ``production``. Production refuses to start without a secret."""
    secret: str = ""
    """HS256 key for access tokens (``LIVE_SECRET``). Generated and kept in the data
    dir in dev, so ``live token`` and ``live serve`` agree."""
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    redis_url: str | None = None
    database_url: str | None = None
    redis_wait_replicas: int = 0
    """A money operation (gift, purchase, refund, item, withdrawal) is answered once
    this many Redis replicas have it; 0: once the primary has it (see SCALING.md)."""
    redis_wait_ms: int = 1_000
    """How long a money operation waits for those replicas before it fails as
    unavailable (the client resends it with the same key)."""
    settle_delay_ms: int = 10_000
    """Redis Cluster: how long after its debit a gift its node has not finished
    (credit, room totals, event) is finished by another node: the node died."""
    public_url: str = ""
    """How clients reach this server (for printed links); default ``http://host:port``."""
    workers: int = 1
    worker_healthcheck_timeout: int = 60
    """With workers: a worker that does not answer the supervisor's health check
    within this many seconds is killed and replaced (its viewers reconnect). A
    worker on a saturated machine can be late by more than uvicorn's default of
    5 s: that killed a worker holding 11,000 viewers with no error in its log."""
    creator_share_percent: int = 50
    tick_ms: int = 25
    """Fan-out coalescing tick: events within one tick go out as one frame."""
    gc_young_threshold: int = 20_000
    """Allocations between two young garbage collections (CPython's default: 700;
    0 keeps it). Larger: a request's short-lived objects die young instead of
    reaching the old generation, whose full passes stop the process."""
    gc_young_seconds: float = 1.0
    """A young garbage collection at least this often, on the event loop's clock
    (0: only by the allocation count). Under steady load the allocation count
    (net of frees) hardly moves, and the young passes it starts come rarely and
    walk tens of thousands of objects; a pass every second stays short."""
    gc_freeze: bool = True
    """Freeze what start-up built (``gc.freeze()``), so full passes skip it."""
    history_size: int = 1_000
    history_seconds: float = 120.0
    send_buffer_bytes: int = 1_048_576
    """A viewer whose unsent data exceeds this is closed with 4008 (too slow)."""
    max_frame_bytes: int = 65_536
    max_gift_count: int = 99
    max_chat_chars: int = 150
    chat_rate_messages: int = 5
    """Comments one user may post in one room per ``chat_rate_seconds``, on any
    number of connections and nodes (``rate_limited`` beyond)."""
    chat_rate_seconds: float = 10.0
    combo_window_ms: int = 3_000
    """A streakable gift sent again by the same sender within this long continues
    its combo; the combo ends this long after its last gift."""
    leaderboard_interval_ms: int = 1_000
    """At most one ``leaderboard`` (and goal progress) event per room per interval,
    across nodes; the first after a quiet interval goes out at once."""
    viewers_interval_ms: int = 1_000
    """At most one ``viewers`` event per room per interval, across nodes."""
    viewers_ttl_seconds: float = 15.0
    """A node's viewer count of a room is forgotten unless reported again within
    this (live nodes report every third of it): how long a dead node's viewers
    stay counted."""
    join_interval_ms: int = 250
    overlay_alert_backlog: int = 50
    """Alerts a paced connection (``pace=1``) keeps waiting; beyond it the smallest
    gifts are folded into one summary alert."""
    overlay_alert_timeout_seconds: float = 20.0
    """How long a paced alert may stay on screen without ``alert_done`` before the
    next one is sent."""
    """Viewers joining one node within this long are announced in one ``join``."""
    command_rate: float = 10.0
    command_burst: int = 20
    # -- identity: access tokens (live.identity) -------------------------------------
    jwt_leeway_seconds: int = 30
    """Clock skew allowed on a token's ``exp``, ``nbf`` and ``iat``."""
    jwt_algorithms: str = ""
    """Accepted token algorithms, comma-separated (``RS256,ES256``). Empty: ``HS256``
    with ``LIVE_SECRET`` alone, ``RS256,ES256`` when a JWKS URL or a public key file
    is set (list ``HS256`` too to keep accepting development tokens)."""
    jwt_issuer: str = ""
    """When set, a token's ``iss`` must equal it (and is required)."""
    jwt_audience: str = ""
    """When set, a token's ``aud`` must contain one of these (comma-separated)."""
    jwt_max_bytes: int = 8_192
    """Longer tokens are refused before any parsing (also the ``auth`` command's limit)."""
    jwks_url: str = ""
    """The identity service's JWKS (``https://…/.well-known/jwks.json``)."""
    jwks_refresh_seconds: float = 300.0
    """How often the JWKS is fetched again (key rotation without a restart)."""
    jwks_min_refresh_seconds: float = 30.0
    """A token naming an unknown ``kid`` triggers a fetch at most this often."""
    jwks_timeout_seconds: float = 5.0
    jwt_public_key_file: str = ""
    """A PEM public key (or a JWK) that verifies tokens, instead of or beside the JWKS."""
    jwt_claim_user_id: str = "sub"
    """Claim names (or dotted paths into nested claims) of each profile field."""
    jwt_claim_username: str = "name"
    jwt_claim_display_name: str = "display_name"
    jwt_claim_avatar: str = "avatar"
    jwt_claim_roles: str = "roles"
    jwt_claim_adult: str = "adult"
    """A boolean claim; see ``jwt_claim_birthdate``."""
    jwt_claim_birthdate: str = ""
    """A ``YYYY-MM-DD`` claim (OIDC ``birthdate``); when a token has it, adulthood is
    age >= 18 on the day of verification instead of ``jwt_claim_adult``."""
    expired_token: str = "guest"
    """What a live connection whose token expired becomes: ``guest`` (it keeps
    watching; commands that need a user get ``unauthorized`` until an ``auth``
    command) or ``close`` (closed with 4001)."""
    # -- end of identity ---------------------------------------------------------------
    ping_interval: float = 20.0
    """Seconds between keepalive pings the server sends on each WebSocket (0: none)."""
    ping_timeout: float = 20.0
    """A connection whose pong is this late is closed with 1011 (and dropped if it
    does not read that either)."""
    shutdown_timeout: int = 10
    """On SIGTERM, how long in-flight requests and closing connections may take before
    the process exits anyway (a peer that stopped reading can't hold it up longer)."""
    handshake_timeout: float = 10.0
    """Seconds a new connection has to send its request headers (and an HTTP body),
    and a WebSocket to be accepted; slower ones are dropped (slowloris)."""
    allowed_origins: str = ""
    """Browser origins that may open a WebSocket: comma-separated exact origins
    (``https://app.example.com``) or ``*``. Empty: only this server's own origin
    (``public_url``). Pages of the host the handshake names (its ``Host`` header,
    such as the overlay and watch pages this server hosts) are always allowed. A
    handshake without ``Origin`` (not a browser) is always let through; ``null``
    never is."""
    max_connections_per_user: int = 10
    """Open WebSockets per signed-in user, per process (0: no limit)."""
    max_connections_per_ip: int = 0
    """Open WebSockets per client address, per process (0: no limit). Behind a proxy,
    set ``forwarded_allow_ips`` first, or every client has the proxy's address."""
    max_viewers_per_room: int = 0
    """Viewers of one room on one process (0: no limit); overlays don't count."""
    socket_send_buffer_bytes: int = 65_536
    """Kernel send buffer (``SO_SNDBUF``) of each WebSocket (0: the kernel's autotuning,
    up to megabytes per socket). With ``send_buffer_bytes`` it bounds what a viewer
    that stops reading can hold."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are trusted (comma-
    separated addresses or networks, ``*`` for any)."""
    sandbox_payments: bool = True
    """Enables the sandbox payment provider (fake money, for development and tests)."""
    default_region: str = "US"
    first_purchase_bonus_percent: int = 0
    """Bonus coins on a user's first purchase, in percent of the package's coins (0: none)."""
    promotions: str = ""
    """Time-boxed bonus campaigns, a JSON list of ``{"id", "percent", "starts_at",
    "ends_at", "regions", "packages"}`` (times in ISO 8601 with an offset)."""
    daily_spend_cap: int = 5_000_000
    """Coins one user may spend on gifts per day of their time zone (0: no cap);
    users may set a lower cap of their own."""
    monthly_spend_cap: int = 50_000_000
    """The same per calendar month (0: no cap)."""
    gift_rate_per_minute: int = 1_200
    """Gifts per user per minute across connections and nodes (0: not limited)."""
    gift_burst: int = 600
    purchase_rate_per_hour: int = 3_600
    """Purchases per user per hour (0: not limited)."""
    purchase_burst: int = 600
    withdrawal_rate_per_hour: int = 60
    withdrawal_burst: int = 10
    pin_attempts_per_hour: int = 6
    """Limit changes that give a PIN, per user per hour (so a PIN cannot be guessed)."""
    hold_seconds: int = 604_800
    """Diamonds become withdrawable this long after the hour they were earned in
    (the refund window)."""
    withdrawal_min_diamonds: int = 2_000
    withdrawal_daily_max_diamonds: int = 2_000_000
    """Per creator per UTC day (0: no maximum)."""
    payout_days: int = 3
    """Days from a withdrawal to its expected payment date."""
    diamond_cash_rate: str = "0.005"
    """Cash value of one diamond, in ``payout_currency``."""
    payout_currency: str = "USD"
    sandbox_payouts: bool = True
    """Enables the sandbox payout provider (no real money moves)."""
    payment_webhook_secrets: str = ""
    """HMAC secrets of the payment webhooks, ``provider=secret,provider=secret``; a
    provider without one has its webhook turned off."""
    webhook_tolerance_seconds: int = 300
    """A webhook whose signed timestamp is further from now than this is refused."""
    # -- payment providers (live.payments) -------------------------------------------
    payment_regions: str = ""
    """Which providers each region offers, a JSON object ``{"stripe": ["US", "GB"],
    "apple": ["*"]}``; a provider not named is offered in every region."""
    stripe_api_key: str = ""
    """Stripe's secret (or restricted) key; set, it enables card payments through
    Stripe (and needs a ``stripe`` entry in ``payment_webhook_secrets``)."""
    stripe_publishable_key: str = ""
    """Handed to clients with a new payment, for Stripe.js and the mobile SDKs."""
    stripe_api_base: str = ""
    """Stripe's API address (empty: Stripe's own), for a proxy."""
    stripe_timeout_seconds: float = 10.0
    stripe_max_network_retries: int = 2
    """Retries of a failed call to Stripe, each under the same idempotency key."""
    apple_bundle_id: str = ""
    """The app's bundle id; set, it enables App Store purchases."""
    apple_app_apple_id: int = 0
    """The app's Apple ID (App Store Connect), required for the Production environment."""
    apple_environments: str = "Production"
    """App Store environments accepted, comma-separated: ``Production``, ``Sandbox``."""
    apple_root_certificates: str = ""
    """Comma-separated files of Apple's root certificates (DER or PEM)."""
    apple_products: str = ""
    """Consumable product ids → coin packages, a JSON object ``{"com.x.coins70": "us_70"}``."""
    apple_online_checks: bool = True
    """Check the certificates' revocation with Apple (OCSP) on every verification."""
    # -- real payout providers (live/payouts) -----------------------------------------
    stripe_connect_payouts: bool = False
    """Enables creator payouts through Stripe Connect (needs the key, the webhook
    secret and the onboarding return and refresh URLs)."""
    stripe_connect_secret_key: str = ""
    """The platform's Stripe secret key for payouts (empty: ``stripe_api_key``)."""
    stripe_connect_webhook_secret: str = ""
    """The signing secret of the Connect webhook endpoint (``whsec_…``)."""
    stripe_connect_return_url: str = ""
    """Where Stripe sends a creator who finished onboarding (a page of the app)."""
    stripe_connect_refresh_url: str = ""
    """Where Stripe sends a creator whose onboarding link expired (asks for a new one)."""
    stripe_connect_country: str = "US"
    """Country of the connected accounts created for creators (ISO 3166-1 alpha-2)."""
    payout_poll_seconds: float = 300.0
    """How often each node asks the payout providers about unsettled withdrawals
    (0: never; webhooks alone settle them)."""
    migrate_on_start: bool = True
    # -- the catalog -----------------------------------------------------------------
    catalog_poll_seconds: float = 0.25
    """How often each node reads the stored catalog version: a change made on
    another node or by ``live catalog import`` is served within this."""
    # -- event subscriptions (webhooks to creators' integrations) --------------------
    subscription_allow_loopback: bool = False
    """Callbacks may point at loopback addresses, over http too (development and
    tests only: never in production)."""
    subscription_allowed_networks: str = ""
    """Comma-separated CIDR ranges callbacks may reach although private (an
    integration inside your own network); https only."""
    subscription_timeout_seconds: float = 10.0
    """One delivery attempt (connect, send, answer) at most this long."""
    subscription_max_response_bytes: int = 65_536
    """A callback's answer is read up to this; a longer one fails the attempt."""
    subscription_retry_base_seconds: float = 2.0
    subscription_retry_max_seconds: float = 600.0
    """Retries back off exponentially from the base (doubling) up to this."""
    subscription_disable_after_seconds: float = 259_200.0
    """A subscription failing this long without one success is disabled (revoked)."""
    subscription_max_per_owner: int = 100
    subscription_concurrency: int = 16
    """Subscriptions one node delivers to at once."""
    subscription_like_milestone: int = 1_000
    """A ``like_milestone`` event each time a stream's likes pass a multiple of this."""
    # --------------------------------------------------------------------------------
    metrics_token: str = ""
    """When set, ``/metrics`` answers only ``Authorization: Bearer <this>``
    (``LIVE_METRICS_TOKEN``): keeps the page off the public port."""
    ledger_metrics_port: int = 0
    """Port of the ``live ledger`` worker's own ``/metrics`` (on ``host``, same token
    rule); 0 leaves it off."""
    log_level: str = "info"
    log_format: str = "text"
    """``text`` or ``json`` (one JSON object per line, for log collectors)."""
    demo: bool = False
    """Seed a live demo room and a funded viewer at start, and print links."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def scaled(self) -> bool:
        return self.redis_url is not None

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def limits(self) -> Limits:
        return Limits(
            max_frame_bytes=self.max_frame_bytes,
            max_gift_count=self.max_gift_count,
            max_chat_chars=self.max_chat_chars,
            command_rate=self.command_rate,
            command_burst=self.command_burst,
            max_token_chars=self.jwt_max_bytes,
        )

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            data_dir=self.data_dir,
            redis_url=self.redis_url,
            database_url=self.database_url,
            creator_share_percent=self.creator_share_percent,
            history_size=self.history_size,
            history_seconds=self.history_seconds,
            migrate=self.migrate_on_start,
            policy=self.policy(),
            catalog_poll_seconds=self.catalog_poll_seconds,
            redis_wait_replicas=self.redis_wait_replicas,
            redis_wait_seconds=self.redis_wait_ms / 1000,
            settle_delay_seconds=self.settle_delay_ms / 1000,
        )

    def policy(self) -> MoneyPolicy:
        """The money limits the wallet enforces atomically."""
        return MoneyPolicy(
            daily_spend_cap=self.daily_spend_cap,
            monthly_spend_cap=self.monthly_spend_cap,
            gift_rate_per_minute=self.gift_rate_per_minute,
            gift_burst=self.gift_burst if self.gift_rate_per_minute else 0,
            hold_seconds=self.hold_seconds,
            withdrawal_min=self.withdrawal_min_diamonds,
            withdrawal_daily_max=self.withdrawal_daily_max_diamonds,
            payout_seconds=self.payout_days * 86_400,
        )

    def catalog(self) -> Catalog:
        """The gift catalog and the coin packages, with the configured promotions."""
        return Catalog(
            promotions=parse_promotions(
                self.promotions, first_purchase_percent=self.first_purchase_bonus_percent
            )
        )

    def token_algorithms(self) -> tuple[str, ...]:
        """The accepted token algorithms (see ``jwt_algorithms``)."""
        listed = tuple(a.strip() for a in self.jwt_algorithms.split(",") if a.strip())
        if listed:
            return listed
        if self.jwks_url or self.jwt_public_key_file:
            return ("RS256", "ES256")
        return ("HS256",)

    def token_audiences(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.jwt_audience.split(",") if a.strip())

    def _validate_identity(self) -> None:
        algorithms = self.token_algorithms()
        unknown = [a for a in algorithms if a not in ALGORITHMS]
        if unknown:
            raise SettingsError(
                f"LIVE_JWT_ALGORITHMS: unsupported {', '.join(unknown)}; "
                f"choose from {', '.join(sorted(ALGORITHMS))}"
            )
        asymmetric = any(family_of(a) != "oct" for a in algorithms)
        if asymmetric and not (self.jwks_url or self.jwt_public_key_file):
            raise SettingsError(
                "LIVE_JWT_ALGORITHMS names public-key algorithms: set LIVE_JWKS_URL "
                "or LIVE_JWT_PUBLIC_KEY_FILE"
            )
        if self.jwks_url and not self.jwks_url.startswith(("https://", "http://")):
            raise SettingsError("LIVE_JWKS_URL must be an http(s) URL")
        if self.production and self.jwks_url.startswith("http://"):
            raise SettingsError("LIVE_JWKS_URL must use https in production")
        if self.jwt_public_key_file:
            try:
                load_public_key_file(Path(self.jwt_public_key_file))
            except (OSError, ValueError) as exc:
                raise SettingsError(f"LIVE_JWT_PUBLIC_KEY_FILE: {exc}") from None
        if self.expired_token not in {"guest", "close"}:
            raise SettingsError("LIVE_EXPIRED_TOKEN must be 'guest' or 'close'")
        if not 256 <= self.jwt_max_bytes <= 65_536:
            raise SettingsError("LIVE_JWT_MAX_BYTES must be within 256..65536")
        if self.jwt_leeway_seconds < 0:
            raise SettingsError("LIVE_JWT_LEEWAY_SECONDS must be >= 0")
        for name in ("jwks_refresh_seconds", "jwks_min_refresh_seconds", "jwks_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"LIVE_{name.upper()} must be positive")
        if not self.jwt_claim_user_id:
            raise SettingsError("LIVE_JWT_CLAIM_USER_ID must name a claim")

    def webhook_secrets(self) -> dict[str, str]:
        return parse_secrets(self.payment_webhook_secrets)

    def cash_rate(self) -> Decimal:
        return parse_rate(self.diamond_cash_rate)

    def provider_regions(self) -> dict[str, frozenset[str]]:
        return parse_regions(self.payment_regions)

    def apple_product_packages(self) -> dict[str, str]:
        return parse_products(self.apple_products)

    def _validate_payments(self) -> None:
        for name, parse in (
            ("payment_regions", self.provider_regions),
            ("apple_products", self.apple_product_packages),
        ):
            try:
                parse()
            except ValueError as exc:
                raise SettingsError(f"LIVE_{name.upper()}: {exc}") from None
        if self.stripe_api_key and "stripe" not in self.webhook_secrets():
            raise SettingsError(
                "LIVE_STRIPE_API_KEY needs stripe's webhook signing secret in "
                "LIVE_PAYMENT_WEBHOOK_SECRETS (stripe=whsec_…): Stripe's events credit the coins"
            )
        if not self.stripe_timeout_seconds > 0 or self.stripe_max_network_retries < 0:
            raise SettingsError(
                "LIVE_STRIPE_TIMEOUT_SECONDS > 0, LIVE_STRIPE_MAX_NETWORK_RETRIES >= 0"
            )
        if not self.apple_bundle_id:
            return
        environments = [e.strip() for e in self.apple_environments.split(",") if e.strip()]
        if not environments or set(environments) - {"Production", "Sandbox"}:
            raise SettingsError("LIVE_APPLE_ENVIRONMENTS: Production and/or Sandbox")
        if "Production" in environments and self.apple_app_apple_id <= 0:
            raise SettingsError(
                "LIVE_APPLE_APP_APPLE_ID is required for the Production environment"
            )
        if not self.apple_root_certificates.strip() or not self.apple_product_packages():
            raise SettingsError(
                "LIVE_APPLE_BUNDLE_ID needs LIVE_APPLE_ROOT_CERTIFICATES and LIVE_APPLE_PRODUCTS"
            )

    def _validate_money(self) -> None:
        for name in (
            "first_purchase_bonus_percent",
            "daily_spend_cap",
            "monthly_spend_cap",
            "gift_rate_per_minute",
            "purchase_rate_per_hour",
            "withdrawal_rate_per_hour",
            "pin_attempts_per_hour",
            "hold_seconds",
            "withdrawal_daily_max_diamonds",
            "payout_days",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"LIVE_{name.upper()} must be >= 0")
        for name in ("gift_burst", "purchase_burst", "withdrawal_burst", "withdrawal_min_diamonds"):
            if getattr(self, name) < 1:
                raise SettingsError(f"LIVE_{name.upper()} must be >= 1")
        if self.webhook_tolerance_seconds < 1:
            raise SettingsError("LIVE_WEBHOOK_TOLERANCE_SECONDS must be >= 1")
        self._validate_payouts()
        if not self.payout_currency.isalpha() or len(self.payout_currency) != 3:
            raise SettingsError("LIVE_PAYOUT_CURRENCY must be an ISO 4217 code like USD")
        for name, parse in (
            ("promotions", lambda: self.catalog()),
            ("payment_webhook_secrets", self.webhook_secrets),
            ("diamond_cash_rate", self.cash_rate),
        ):
            try:
                parse()
            except ValueError as exc:
                raise SettingsError(f"LIVE_{name.upper()}: {exc}") from None

    def stripe_connect_secrets(self) -> tuple[str, str]:
        """The Stripe Connect secret key (the card payments' one unless set apart)
        and webhook secret (``""`` when not set)."""
        return (
            self.stripe_connect_secret_key or self.stripe_api_key,
            self.stripe_connect_webhook_secret,
        )

    def _validate_payouts(self) -> None:
        if self.payout_poll_seconds < 0:
            raise SettingsError("LIVE_PAYOUT_POLL_SECONDS must be >= 0")
        if not self.stripe_connect_payouts:
            return
        key, webhook_secret = self.stripe_connect_secrets()
        for name, value in (
            ("LIVE_STRIPE_CONNECT_SECRET_KEY (or LIVE_STRIPE_API_KEY)", key),
            ("LIVE_STRIPE_CONNECT_WEBHOOK_SECRET", webhook_secret),
            ("LIVE_STRIPE_CONNECT_RETURN_URL", self.stripe_connect_return_url),
            ("LIVE_STRIPE_CONNECT_REFRESH_URL", self.stripe_connect_refresh_url),
        ):
            if not value:
                raise SettingsError(f"{name} is required when LIVE_STRIPE_CONNECT_PAYOUTS is on")
        if len(self.stripe_connect_country) != 2 or not self.stripe_connect_country.isalpha():
            raise SettingsError("LIVE_STRIPE_CONNECT_COUNTRY must be a country code like US")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``LIVE_<FIELD>`` for every field (``PORT`` too, as hosting platforms set
        it), apply keyword overrides, then validate and resolve the secret."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"LIVE_{f.name.upper()}")
            if raw is None and f.name == "port":
                raw = env.get("PORT")
            if raw is None and f.name in SECRET_FILE_FIELDS:
                raw = _secret_file(env.get(f"LIVE_{f.name.upper()}_FILE"), f.name)
            if raw is None:
                continue
            try:
                values[f.name] = _convert(f.type, raw)
            except ValueError as exc:
                raise SettingsError(f"LIVE_{f.name.upper()}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings.with_secret()

    def validate(self) -> None:
        self._validate_money()
        self._validate_payments()
        self._validate_identity()
        if self.log_format not in {"text", "json"}:
            raise SettingsError("LIVE_LOG_FORMAT must be 'text' or 'json'")
        if self.env not in {"dev", "production"}:
            raise SettingsError("LIVE_ENV must be 'dev' or 'production'")
        if not 0 <= self.ledger_metrics_port <= 65_535:
            raise SettingsError("LIVE_LEDGER_METRICS_PORT must be a port number (0: off)")
        if not 0 <= self.creator_share_percent <= 100:
            raise SettingsError("LIVE_CREATOR_SHARE_PERCENT must be within 0..100")
        if not 1 <= self.port <= 65_535 and self.port != 0:
            raise SettingsError("LIVE_PORT must be a TCP port")
        if not 0.01 <= self.catalog_poll_seconds <= 60:
            raise SettingsError("LIVE_CATALOG_POLL_SECONDS must be within 0.01..60")
        if self.tick_ms < 1 or self.tick_ms > 1_000:
            raise SettingsError("LIVE_TICK_MS must be within 1..1000")
        if not 0 <= self.gc_young_threshold <= 10_000_000:
            raise SettingsError("LIVE_GC_YOUNG_THRESHOLD must be within 0..10000000")
        if self.gc_young_seconds != 0 and not 0.01 <= self.gc_young_seconds <= 60:
            raise SettingsError("LIVE_GC_YOUNG_SECONDS must be 0 (off) or within 0.01..60")
        for name in (
            "chat_rate_messages",
            "chat_rate_seconds",
            "combo_window_ms",
            "leaderboard_interval_ms",
            "viewers_interval_ms",
            "viewers_ttl_seconds",
            "join_interval_ms",
            "overlay_alert_timeout_seconds",
            "subscription_timeout_seconds",
            "subscription_max_response_bytes",
            "subscription_retry_base_seconds",
            "subscription_retry_max_seconds",
            "subscription_disable_after_seconds",
            "subscription_max_per_owner",
            "subscription_concurrency",
            "subscription_like_milestone",
        ):
            if not getattr(self, name) > 0:
                raise SettingsError(f"LIVE_{name.upper()} must be positive")
        if self.overlay_alert_backlog < 2:
            raise SettingsError("LIVE_OVERLAY_ALERT_BACKLOG must be at least 2")
        if self.redis_wait_replicas < 0:
            raise SettingsError("LIVE_REDIS_WAIT_REPLICAS must be 0 or more")
        if not 1 <= self.redis_wait_ms <= 5_000:
            raise SettingsError("LIVE_REDIS_WAIT_MS must be within 1..5000")
        if not 1_000 <= self.settle_delay_ms <= 3_600_000:
            raise SettingsError("LIVE_SETTLE_DELAY_MS must be within 1000..3600000")
        if self.redis_url and not self.database_url:
            raise SettingsError("LIVE_REDIS_URL needs LIVE_DATABASE_URL (the ledger) too")
        if self.workers > 1 and not self.scaled:
            raise SettingsError("--workers > 1 needs the scaled engine (LIVE_REDIS_URL)")
        if self.production and self.secret and len(self.secret) < 32:
            raise SettingsError("LIVE_SECRET must be at least 32 characters in production")
        for name in (
            "max_connections_per_user",
            "max_connections_per_ip",
            "max_viewers_per_room",
            "socket_send_buffer_bytes",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"LIVE_{name.upper()} must be >= 0 (0: no limit)")
        if not 0 < self.handshake_timeout <= 300:
            raise SettingsError("LIVE_HANDSHAKE_TIMEOUT must be within (0, 300] seconds")
        if not 0 < self.shutdown_timeout <= 600:
            raise SettingsError("LIVE_SHUTDOWN_TIMEOUT must be within (0, 600] seconds")
        if not 1 <= self.worker_healthcheck_timeout <= 3_600:
            raise SettingsError("LIVE_WORKER_HEALTHCHECK_TIMEOUT must be within 1..3600 seconds")
        if self.production and self.subscription_allow_loopback:
            raise SettingsError("LIVE_SUBSCRIPTION_ALLOW_LOOPBACK is for development only")
        try:
            self.subscription_networks()
        except ValueError as exc:
            raise SettingsError(f"LIVE_SUBSCRIPTION_ALLOWED_NETWORKS: {exc}") from None
        if self.ping_interval < 0 or self.ping_timeout < 0:
            raise SettingsError("LIVE_PING_INTERVAL and LIVE_PING_TIMEOUT must be >= 0")
        try:
            self.origins()
        except ValueError as exc:
            raise SettingsError(f"LIVE_ALLOWED_ORIGINS: {exc}") from None

    def subscription_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The private ranges callbacks may reach (``subscription_allowed_networks``)."""
        raw = [part.strip() for part in self.subscription_allowed_networks.split(",")]
        return tuple(ip_network(part, strict=False) for part in raw if part)

    def origins(self) -> frozenset[str] | None:
        """The browser origins allowed to open a WebSocket; None: any (``*``)."""
        if self.allowed_origins.strip():
            return parse_origins(self.allowed_origins)
        own = own_origin(self.base_url)
        return frozenset({own} if own else ())

    def with_secret(self) -> Settings:
        if self.secret:
            return self
        if self.production:
            if not any(family_of(a) == "oct" for a in self.token_algorithms()):
                return self  # tokens are verified with public keys only: no secret needed
            raise SettingsError("LIVE_SECRET is required when LIVE_ENV=production")
        return replace(self, secret=_dev_secret(self.data_dir))


SECRET_FILE_FIELDS = frozenset(
    {
        "secret",
        "metrics_token",
        "payment_webhook_secrets",
        "stripe_api_key",
        "stripe_connect_secret_key",
        "stripe_connect_webhook_secret",
    }
)
"""Secrets that may also come from a file, ``LIVE_<NAME>_FILE`` (a mounted secret)."""


def _secret_file(path: str | None, name: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SettingsError(f"LIVE_{name.upper()}_FILE: {exc.strerror}") from None


def _dev_secret(data_dir: Path) -> str:
    """A per-install development secret, created once and kept beside the data."""
    path = data_dir / "dev-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _convert(kind: Any, raw: str) -> Any:
    text = str(kind)
    if "bool" in text:
        return _bool(raw)
    if "int" in text and "float" not in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    if "Path" in text:
        return Path(raw)
    if "None" in text:
        return raw or None
    return raw
