"""Configuration: TOML decoded into typed structs with msgspec.

Unknown keys and wrong types are refused with the file, the key path and the expected type named
(:class:`ConfigError`). Secrets never live in the config file: they come from the environment
(``POLYBOT_PRIVATE_KEY``, ``POLYBOT_API_KEY``, ``POLYBOT_API_SECRET``, ``POLYBOT_API_PASSPHRASE``;
``POLYBOT_ODDS_API_KEY`` for an odds feed; ``POLYBOT_TELEGRAM_BOT_TOKEN``, ``POLYBOT_ALERT_WEBHOOK_URL``
for alerts) or a separate secrets file named by ``[secrets] file`` (TOML with the same keys, lower case).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import msgspec


class ConfigError(ValueError):
    """A config value was refused; the message names the file and the key."""


class _C(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class EngineConfig(_C):
    data_dir: str = "var"
    journal: bool = True
    journal_file: str = "journal.jsonl"
    #: fsync the journal: "orders" (before anything is sent to an exchange), "always" (every
    #: flush), "never" (tests, replays).
    fsync: Literal["orders", "always", "never"] = "orders"
    flush_interval_ms: int = 200
    snapshot_every: int = 5000  # inputs between state snapshots
    queue_size: int = 10_000  # the inbound stream's bound (back-pressure, never drops)
    on_shutdown: Literal["cancel", "leave"] = "cancel"  # open orders at shutdown
    client_id_prefix: str = "pb"
    recover: bool = True  # rebuild state from snapshot + journal on start
    #: a daemon's journal starts a new part (journal.<n>.jsonl, with snapshot.<n>.json: the state
    #: the next part starts from) at the first snapshot after it passes this many MB; 0 = never
    rotate_mb: float = 0
    run_for_s: float = 0  # stop by itself after this long (0 = until SIGINT/SIGTERM or the feeds end)


_LOG_NUM = r"(?P<n>\d+(?:\.\d+)?)\s*"
_LOG_SIZE = re.compile(_LOG_NUM + r"(?P<u>(?:[kmgt]i?)?b)", re.I)
_LOG_SIZE_UNITS = {"b": "B", "kb": "KB", "mb": "MB", "gb": "GB", "tb": "TB", "kib": "KiB", "mib": "MiB", "gib": "GiB", "tib": "TiB"}
_LOG_INTERVAL = re.compile(_LOG_NUM + r"(?:s|secs?|seconds?|min|mins|minutes?|h|hours?|d|days?|w|weeks?)", re.I)
_LOG_AGE = re.compile(_LOG_NUM + r"(?:s|secs?|seconds?|min|mins|minutes?|h|hours?|d|days?|w|weeks?|months?|y|years?)", re.I)
_LOG_FREQUENCY = frozenset({"hourly", "daily", "weekly", "monthly", "yearly"})
_LOG_DAYTIME = re.compile(r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?")


def _log_rotation(v: str) -> str:
    """The rotation as loguru takes it (a size's unit spelled in bytes: loguru would read
    "mb" as megabits); raises ValueError naming what is accepted."""
    s = v.strip()
    if not s or s.lower() in _LOG_FREQUENCY or _LOG_DAYTIME.fullmatch(s):
        return s.lower()
    m = _LOG_SIZE.fullmatch(s)
    if m and float(m["n"]) > 0:
        return f"{m['n']} {_LOG_SIZE_UNITS[m['u'].lower()]}"
    m = _LOG_INTERVAL.fullmatch(s)
    if m and float(m["n"]) > 0:
        return s
    raise ValueError(f"cannot rotate at {v!r}: give a size (\"100 MB\", \"1 GiB\"), an interval (\"12 h\", \"1 day\"), "
                     f"hourly, daily, weekly, monthly, yearly, a time of day (\"00:00\"), or \"\" (never rotate)")  # fmt: skip


def _log_retention(v: int | str) -> int | str:
    if isinstance(v, int):
        if v < 1:
            raise ValueError(f"must keep at least 1 rotated file, got {v}")
        return v
    s = v.strip()
    m = _LOG_AGE.fullmatch(s)
    if not s or (m and float(m["n"]) > 0):
        return s
    raise ValueError(f"cannot keep rotated files for {v!r}: give a number of files (10), an age (\"7 days\", "
                     f"\"2 weeks\"), or \"\" (keep them all)")  # fmt: skip


class LoggingConfig(_C):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    json: bool = False  # JSON lines on stderr instead of the human format
    file: str = ""  # also write JSON lines to this file ("" = no file)
    #: when the file starts a new part: a size ("100 MB"), an interval ("1 day"), "daily" (or
    #: hourly, weekly, monthly, yearly), a time of day ("00:00"), or "" (never)
    file_rotation: str = "100 MB"
    #: rotated parts kept: a count (10) or an age ("7 days"); "" keeps them all
    file_retention: int | str = 10
    status_interval_s: float = 5.0  # periodic status line, 0 = off

    def __post_init__(self) -> None:
        # a ValidationError with its own path passes msgspec unchanged, so the message names
        # the key (logging.file_rotation), not only its table
        for key, check in (("file_rotation", _log_rotation), ("file_retention", _log_retention)):
            try:
                setattr(self, key, check(getattr(self, key)))
            except ValueError as exc:
                raise msgspec.ValidationError(f"{exc} - at `$.logging.{key}`") from None


class VenueExecutorConfig(_C):
    kind: str
    params: dict[str, Any] = {}


class ExecutorConfig(_C):
    kind: str = "paper"  # paper | null | loopback | entry-point name | module:Class
    params: dict[str, Any] = {}
    #: [executor.venues.<venue>]: the executor of the markets whose id carries that venue
    #: ("pmus:<slug>" -> venue "pmus"); [executor] itself serves the default venue. Absent: the
    #: one executor serves every market (polybot.execution.router).
    venues: dict[str, VenueExecutorConfig] = {}


class RiskConfig(_C):
    chain: list[str] = msgspec.field(default_factory=lambda: ["trading_state"])
    #: [risk.validators.<name>]: each validator's params
    validators: dict[str, dict[str, Any]] = {}
    #: [risk.strategies.<instance>.<name>]: params that override the validator's for one
    #: strategy instance (that strategy then runs its own instance of the validator)
    strategies: dict[str, dict[str, dict[str, Any]]] = {}
    #: how far below the best bid a flatten may sell (price, e.g. "0.02")
    flatten_max_slippage: str = "0.02"


class FeedConfig(_C):
    kind: str  # entry point in polybot.adapters, or module:Class
    name: str = ""
    params: dict[str, Any] = {}


class MarketDataConfig(_C):
    #: Check every book against the venue's hash (PROTOCOL.md §1.8) and top of book. The daemon
    #: verifies by default; ``polybot replay`` only with ``--verify-book``.
    verify_books: bool = True
    #: Hash inputs WebSocket books do not state (REST books and the catalog override them).
    min_order_size: str = "5"
    neg_risk: bool = False


class ReplayConfig(_C):
    #: The source of bare-frame recordings (lines with no envelope).
    bare_source: str = "polymarket.market"


class SecretsConfig(_C):
    file: str = ""


class RetentionConfig(_C):
    """Old journal parts (``journal.<n>.jsonl``, moved aside by a fresh start; one whole session
    each): applied by the daemon at start and hourly, and by ``polybot prune`` (polybot.retention).
    The current journal and its snapshot are never touched."""

    compress_after_days: float = 7.0  # gzip a part this old to journal.<n>.jsonl.gz (0 = never)
    delete_after_days: float = 0.0  # delete a part (and its snapshot) this old (0 = never)
    keep_parts: int = 10  # the newest N parts are never deleted, whatever their age

    def __post_init__(self) -> None:
        from .retention import check_policy

        try:
            check_policy(self)
        except ValueError as exc:
            key, _, msg = str(exc).partition(": ")
            raise msgspec.ValidationError(f"{msg} - at `$.retention.{key}`") from None


class PortfolioConfig(_C):
    #: what the unpaired part of a position is marked to (matched YES+NO pairs are worth 1)
    mark: Literal["bid", "mid"] = "bid"
    #: replay/session report: equity for the max drawdown is sampled after every fill and
    #: settlement, and on book changes of held assets at most this often (event time)
    drawdown_sample_s: float = 1.0
    #: when a resolved market's shares turn into collateral: "resolution" (at once: paper
    #: trading and replays) or "redeem" (live: they stay, marked at their payout, until the
    #: redeem transaction is confirmed)
    settle: Literal["resolution", "redeem"] = "resolution"
    #: with settle = "redeem": redeem a resolved market's shares as soon as it resolves
    auto_redeem: bool = True


class ApiConfig(_C):
    """The operator's HTTP API and dashboard (polybot.api). Mutating endpoints always need the
    bearer token (secret ``api_token``: ``POLYBOT_API_TOKEN`` or the secrets file; on a loopback
    address one is generated into ``<data_dir>/api_token`` when none is set). On any other
    address every endpoint but ``/critical`` needs it, and the daemon refuses to start without
    one."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8321  # 0 = any free port (logged)
    #: /critical answers 503 when a book has been unhealthy this long (s) ...
    critical_book_unhealthy_s: float = 30.0
    #: ... or a feed has been disconnected (or stale) this long (s), or trading is halted
    critical_feed_down_s: float = 10.0
    push_interval_s: float = 1.0  # WebSocket updates at most this often
    pnl_sample_s: float = 1.0  # PnL-over-time sampling (wall clock)
    history: int = 200  # recent fills, order steps, rejections kept for the views


AlertLevel = Literal["info", "warning", "critical"]


class AlertsWebhookConfig(_C):
    """[alerts.webhook]: POST every alert as JSON to the URL in the secret ``alert_webhook_url``
    (``POLYBOT_ALERT_WEBHOOK_URL`` or the secrets file: such URLs usually embed a token)."""

    enabled: bool = False
    min_level: AlertLevel = "info"
    timeout_s: float = 10.0
    retries: int = 3  # further attempts after a 5xx, a 429 or a connection error
    backoff_s: float = 1.0  # first retry delay, doubled per retry (at most 60 s)


class AlertsTelegramConfig(_C):
    """[alerts.telegram]: a Telegram bot (secret ``telegram_bot_token``) that sends the alerts to
    ``chat_ids`` and takes /status, /pnl, /halt and /resume from those chats only."""

    enabled: bool = False
    chat_ids: list[int] = []
    api_url: str = "https://api.telegram.org"
    min_level: AlertLevel = "info"
    commands: bool = True
    poll_timeout_s: int = 30  # getUpdates long poll (1-50 s)
    max_command_age_s: float = 120.0  # older commands (sent while the daemon was down) are ignored
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 1.0


class AlertsConfig(_C):
    """[alerts]: operator alerts from a live daemon (polybot.alerts). Rate limits apply per sink:
    a token bucket (``burst``, refilled at ``per_minute``) and coalescing of repeats of one kind
    within ``coalesce_s``; critical alerts skip both but at most ``critical_per_hour`` go out."""

    enabled: bool = False
    daily_summary_hour_utc: int = -1  # 0-23, -1 = no daily summary
    feed_down_s: float = 30.0  # a feed disconnected this long (s) is an outage
    burst: int = 10
    per_minute: float = 6.0
    coalesce_s: float = 300.0
    critical_per_hour: int = 30
    risk_rejections_window_s: float = 300.0  # risk rejections are summed over this window
    risk_rejections_min: int = 1  # ... and reported when at least this many
    webhook: AlertsWebhookConfig = msgspec.field(default_factory=AlertsWebhookConfig)
    telegram: AlertsTelegramConfig = msgspec.field(default_factory=AlertsTelegramConfig)

    def __post_init__(self) -> None:
        tg = self.telegram
        checks = (
            ("daily_summary_hour_utc", -1 <= self.daily_summary_hour_utc <= 23, "must be 0-23, or -1 (off)"),
            ("feed_down_s", self.feed_down_s >= 0, "must be >= 0"),
            ("burst", self.burst >= 1, "must be at least 1"),
            ("per_minute", self.per_minute > 0, "must be > 0"),
            ("coalesce_s", self.coalesce_s >= 0, "must be >= 0"),
            ("critical_per_hour", self.critical_per_hour >= 1, "must be at least 1"),
            ("risk_rejections_window_s", self.risk_rejections_window_s > 0, "must be > 0"),
            ("risk_rejections_min", self.risk_rejections_min >= 1, "must be at least 1"),
            ("telegram.chat_ids", bool(tg.chat_ids) or not tg.enabled, "telegram is enabled: list at least one chat id"),
            ("telegram.api_url", bool(re.fullmatch(r"https?://[^/\s?#@]+(/[^\s?#]*)?", tg.api_url)),
             "must be an http:// or https:// URL with no query"),
            ("telegram.poll_timeout_s", 1 <= tg.poll_timeout_s <= 50, "must be 1-50"),
            ("telegram.max_command_age_s", tg.max_command_age_s > 0, "must be > 0"),
        )  # fmt: skip
        for sink, c in (("webhook", self.webhook), ("telegram", tg)):
            checks += ((f"{sink}.timeout_s", c.timeout_s > 0, "must be > 0"),
                       (f"{sink}.retries", 0 <= c.retries <= 10, "must be 0-10"),
                       (f"{sink}.backoff_s", 0 <= c.backoff_s <= 600, "must be 0-600"))  # fmt: skip
        for key, ok, msg in checks:
            if not ok:
                raise msgspec.ValidationError(f"{msg} - at `$.alerts.{key}`")
        self.telegram.api_url = tg.api_url.rstrip("/")


class RollingConfig(_C):
    """A ``[[rolling]]`` table: one strategy instance per window of a recurring series
    (:mod:`polybot.rolling`)."""

    name: str
    series: str  # MarketInfo.series, e.g. "btc-updown-5m"
    cls: str = msgspec.field(name="class")  # strategy name or module:Class
    params: dict[str, Any] = {}
    market_param: str = "markets"  # the params field that gets the window's market
    lead_s: float = 60.0  # start the instance this long before the window opens
    stop_after_s: float = 3600.0  # stop it this long after the window's end without a resolution
    redeem: bool = True  # redeem the window's shares after it resolves (settle = "redeem")
    max_live: int = 4  # windows of this table running at once
    enabled: bool = True


class WalletConfig(_C):
    """[wallet]: on-chain transactions (``polybot wallet``, and the live executor's merges, splits,
    redeems and converts). The RPC URL usually embeds an API key: give it as the secret
    ``rpc_url`` (``POLYBOT_RPC_URL`` or the secrets file) rather than here; a proxy, Safe or
    deposit wallet sends through Polymarket's relayer with the secret ``relayer_api_key``."""

    rpc_url: str = ""  # the secret rpc_url wins
    chain_id: int = 0  # 0 = the executor's chain_id (executor.params.chain_id, else 137)
    confirmations: int = 3  # blocks a receipt must have before a transaction counts as done
    max_fee_gwei: float = 500.0  # cap on maxFeePerGas
    gas_margin: float = 1.2  # gas limit = eth_estimateGas x this
    receipt_timeout_s: float = 180.0  # not mined by then (after resends): failed
    resend_after_s: float = 30.0  # no receipt this long: the same signed transaction again
    poll_interval_s: float = 2.0
    relayer_url: str = "https://relayer-v2.polymarket.com"
    relayer_api_key_address: str = ""  # the relayer API key's owner ("" = the signer)
    #: contract address overrides by name (adapters/polymarket/chain.py Contracts), e.g. for Amoy
    contracts: dict[str, str] = {}

    def __post_init__(self) -> None:
        checks = (
            ("rpc_url", not self.rpc_url or bool(re.fullmatch(r"(https?|wss?)://\S+", self.rpc_url)),
             "must be an http(s):// or ws(s):// URL"),
            ("chain_id", self.chain_id >= 0, "must be a chain id (137 Polygon, 80002 Amoy) or 0 (the executor's)"),
            ("confirmations", 1 <= self.confirmations <= 1000, "must be 1-1000"),
            ("max_fee_gwei", 0 < self.max_fee_gwei <= 1_000_000, "must be > 0 (gwei)"),
            ("gas_margin", 1.0 <= self.gas_margin <= 5.0, "must be 1.0-5.0"),
            ("receipt_timeout_s", self.receipt_timeout_s > 0, "must be > 0"),
            ("resend_after_s", self.resend_after_s > 0, "must be > 0"),
            ("poll_interval_s", 0 < self.poll_interval_s <= 60, "must be > 0 and at most 60"),
            ("relayer_url", bool(re.fullmatch(r"https?://\S+", self.relayer_url)), "must be an http(s):// URL"),
            ("relayer_api_key_address", not self.relayer_api_key_address
             or bool(re.fullmatch(r"0x[0-9a-fA-F]{40}", self.relayer_api_key_address)), "must be a 0x address"),
        )  # fmt: skip
        for key, ok, msg in checks:
            if not ok:
                raise msgspec.ValidationError(f"{msg} - at `$.wallet.{key}`")
        for name, v in self.contracts.items():
            if not re.fullmatch(r"0x[0-9a-fA-F]{40}|0x[0-9a-fA-F]{64}", v):
                raise msgspec.ValidationError(f"must be a 0x address - at `$.wallet.contracts.{name}`")


class Config(_C):
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    executor: ExecutorConfig = msgspec.field(default_factory=ExecutorConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    feeds: list[FeedConfig] = []
    #: [strategies.<instance>] tables: ``class`` (name or module:Class), ``enabled``, params.
    strategies: dict[str, dict[str, Any]] = {}
    rolling: list[RollingConfig] = []
    replay: ReplayConfig = msgspec.field(default_factory=ReplayConfig)
    market_data: MarketDataConfig = msgspec.field(default_factory=MarketDataConfig)
    portfolio: PortfolioConfig = msgspec.field(default_factory=PortfolioConfig)
    secrets: SecretsConfig = msgspec.field(default_factory=SecretsConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    wallet: WalletConfig = msgspec.field(default_factory=WalletConfig)
    #: Where the config came from (for error messages); not a TOML key.
    source_path: str = ""


_MSG = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)


def describe_validation_error(err: Exception, file: str, prefix: str = "") -> str:
    """'Expected `int`, got `str` - at `$.engine.queue_size`' -> 'FILE: engine.queue_size:
    expected int, got str'."""
    m = _MSG.match(str(err))
    msg = m.group("msg") if m else str(err)
    path = (m.group("path") or "$") if m else "$"
    key = path[2:] if path.startswith("$.") else ("" if path == "$" else path[1:])
    unknown = re.match(r"Object contains unknown field `([^`]+)`", msg)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        msg = "unknown key"
    missing = re.match(r"Object missing required field `([^`]+)`", msg)
    if missing:
        key = f"{key}.{missing.group(1)}" if key else missing.group(1)
        msg = "required key is missing"
    if prefix:
        key = f"{prefix}.{key}" if key else prefix
    msg = msg.replace("`", "")
    if msg[:1].isupper():
        msg = msg[0].lower() + msg[1:]
    return f"{file}: {key or '(top level)'}: {msg}"


def load_config(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    try:
        data = msgspec.toml.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, str(p))


def parse_config(data: dict[str, Any], file: str = "<config>") -> Config:
    if "source_path" in data:
        raise ConfigError(f"{file}: source_path: unknown key")
    strategies = data.get("strategies")
    if isinstance(strategies, dict):  # msgspec would only say "strategies[...]": name the table
        for name, table in strategies.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{file}: strategies.{name}: expected a table, got {type(table).__name__}")
    try:
        cfg = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, file)) from None
    if cfg.engine.queue_size < 1:
        raise ConfigError(f"{file}: engine.queue_size: must be at least 1, got {cfg.engine.queue_size}")
    if cfg.engine.snapshot_every < 1:
        raise ConfigError(f"{file}: engine.snapshot_every: must be at least 1")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", cfg.engine.client_id_prefix):
        raise ConfigError(f"{file}: engine.client_id_prefix: 1-16 letters, digits, '_' or '-'")
    api = cfg.api
    if not 0 <= api.port <= 65535:
        raise ConfigError(f"{file}: api.port: must be 0-65535, got {api.port}")
    for key in ("critical_book_unhealthy_s", "critical_feed_down_s"):
        if getattr(api, key) < 0:
            raise ConfigError(f"{file}: api.{key}: must be >= 0")
    for key in ("push_interval_s", "pnl_sample_s"):
        if not getattr(api, key) > 0:
            raise ConfigError(f"{file}: api.{key}: must be > 0")
    if api.history < 1:
        raise ConfigError(f"{file}: api.history: must be at least 1")
    for name, table in cfg.strategies.items():
        if not isinstance(table, dict) or "class" not in table:
            raise ConfigError(f"{file}: strategies.{name}.class: required key is missing")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(f"{file}: strategies.{name}: instance names are letters, digits, _ . -")
    return msgspec.structs.replace(cfg, source_path=file)


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------

SECRET_KEYS = ("private_key", "api_key", "api_secret", "api_passphrase", "odds_api_key", "api_token",
               "rpc_url", "relayer_api_key", "telegram_bot_token", "alert_webhook_url",
               # Polymarket US (Ed25519): the key id and the base64 secret key
               "pmus_key_id", "pmus_secret_key")


class Secrets:
    """Holds credentials; its repr and str never show them."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str]) -> None:
        self._values = {k: v for k, v in values.items() if v}

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return f"Secrets({', '.join(f'{k}=***' for k in sorted(self._values))})"

    __str__ = __repr__


def load_secrets(cfg: Config, env: dict[str, str] | None = None) -> Secrets:
    env = dict(os.environ) if env is None else env
    values: dict[str, str] = {}
    if cfg.secrets.file:
        p = Path(os.path.expanduser(cfg.secrets.file))
        try:
            mode = p.stat().st_mode
        except OSError:
            mode = 0
        if mode & 0o077:
            raise ConfigError(f"{p}: the secrets file is readable by other users (mode {mode & 0o777:o}): "
                              f"run chmod 600 {p}")  # fmt: skip
        try:
            data = msgspec.toml.decode(p.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read secrets file: {exc.strerror or exc}") from None
        except msgspec.DecodeError:
            raise ConfigError(f"{p}: secrets file is not valid TOML") from None
        for k, v in data.items():
            if k not in SECRET_KEYS:
                raise ConfigError(f"{p}: {k}: unknown key (expected one of {', '.join(SECRET_KEYS)})")
            if not isinstance(v, str):
                raise ConfigError(f"{p}: {k}: expected a string")
            values[k] = v
    for k in SECRET_KEYS:
        v = env.get(f"POLYBOT_{k.upper()}")
        if v:
            values[k] = v
    return Secrets(values)
