"""``polybot doctor``: preflight checks for the Polymarket US executor (``kind = "polymarket-us"``).

Before a live session, check what the executor needs and a person can get wrong, in order:

1. **config**: the params convert to :class:`.live.UsParams` (unknown keys and bad values named)
   and pass the executor's own checks (TIFs, timeouts, ``demo_key`` only on loopback);
2. **secrets file**: the CLOB doctor's check (exists, mode 600, valid TOML, known keys);
3. **key**: ``pmus_key_id`` / ``pmus_secret_key`` present and a valid Ed25519 key (or
   ``demo_key = true`` with loopback URLs), and the ``polymarket-us`` SDK that signs with it;
4. **api**: a signed ``GET /v1/account/balances``: reachable and the key accepted (balance and
   buying power shown; a 401 names the venue's reason and the secrets to fix);
5. **clock**: the venue refuses timestamps more than 30 s off its clock: the server's HTTP
   ``Date`` header against local time (warning above 5 s, failure above 25 s);
6. **private websocket**: the signed handshake to ``ws_url + /v1/ws/private`` (``ws_url = ""``:
   skipped, the executor runs without the stream);
7. **open orders**: ``GET /v1/orders/open``; with ``unknown_orders = "refuse"`` open orders fail
   the check (the daemon refuses to start unless its journal placed them);
8. **positions**: ``GET /v1/portfolio/positions``: how many markets hold a net position;
9. **markets**: each ``markets`` slug (and ``events`` slug) of the config's ``polymarket-us`` feeds
   exists at the feed's gateway and is open.

The executor class names this module (``UsExecutor.doctor_module``); ``polybot doctor`` calls
:func:`run_doctor` then :func:`format_report`. Nothing here raises for a problem it can report.

The secret key never appears in a check: messages are built from fixed texts, URLs and the key
id's first 8 characters, and every detail and fix passes through a redaction of the secret key
(and of the full key id) as a last line of defence.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import msgspec

from adapters.polymarket.doctor import Check, _describe, check_secrets_file, format_report
from polybot.config import Config, Secrets, describe_validation_error

from .auth import AuthError, check_secret, describe_key, sign_headers

__all__ = ["Check", "format_report", "run_doctor"]

PRIVATE_PATH = "/v1/ws/private"
GATEWAY_URL = "https://gateway.polymarket.us"
SKEW_WARN_S = 5.0
SKEW_FAIL_S = 25.0
MAX_PAGES = 50
KEY_ENV = "POLYBOT_PMUS_KEY_ID"
SECRET_ENV = "POLYBOT_PMUS_SECRET_KEY"
_CLOB_SECRET_KEYS = "private_key, api_key, api_secret, api_passphrase"
_FIX_KEY = (f"export {KEY_ENV}=<key id> and {SECRET_ENV}=<base64 Ed25519 secret key> (the API key from "
            "polymarket.us/developer), or set pmus_key_id and pmus_secret_key in the [secrets] file")  # fmt: skip


class _NetError(Exception):
    """A request without a usable HTTP answer (message: URL and error, never a secret)."""


class _Ctx:
    def __init__(self, cfg: Config, secrets: Secrets, params: dict[str, Any]) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.raw = params
        self.p: Any = None  # UsParams once the config converts
        self.timeout = 5.0
        self.key_id = ""  # set while the key can be used
        self.secret = ""
        self.seen_key_id = ""  # any key id seen (redacted to its first 8 characters)
        self.api_ok = False
        self.date: str | None = None  # the venue's Date header (from the balances answer)
        self.t0 = self.t1 = 0.0
        self.secrets_file_error = ""  # set by the CLOB doctor's secrets-file check

    @property
    def api_url(self) -> str:
        v = self.p.api_url if self.p is not None else self.raw.get("api_url", "https://api.polymarket.us")
        return str(v).rstrip("/")

    @property
    def ws_url(self) -> str:
        v = self.p.ws_url if self.p is not None else self.raw.get("ws_url", "wss://api.polymarket.us")
        return str(v).rstrip("/") if isinstance(v, str) else ""

    def redact(self, text: str) -> str:
        for s in (self.secret, *((self.secret.rstrip("="),) if self.secret else ())):
            if len(s) >= 4 and s in text:
                text = text.replace(s, "***")
        for k in {self.key_id, self.seen_key_id}:
            if len(k) > 8 and k in text:
                text = text.replace(k, describe_key(k))
        return text


# ------------------------------------------------------------------------------------------
# HTTP helpers


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"


def _message(body: str) -> str:
    """The venue's error message (``{"message": ...}``) or the body, shortened."""
    try:
        b = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _short(body) or "no message"
    if isinstance(b, dict):
        return _short(str(b.get("message") or b.get("error") or b.get("reason") or body))
    return _short(body)


def _json(body: str) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


async def _get(ctx: _Ctx, session: aiohttp.ClientSession, base: str, path: str, *, signed: bool = False,
               query: list[tuple[str, str]] | None = None) -> tuple[int, str, Any]:  # fmt: skip
    """``GET base+path``: (status, body, headers). Signed requests sign the path without query."""
    url = base + path
    try:
        headers = sign_headers(ctx.key_id, ctx.secret, "GET", path) if signed else None
    except Exception:  # noqa: BLE001 - never pass a signing library's message on
        raise _NetError(f"GET {url}: could not sign the request with this key") from None
    try:
        async with session.get(url, params=query, headers=headers, allow_redirects=True) as resp:
            body = await resp.text(errors="replace")
            return resp.status, body, resp.headers
    except Exception as exc:  # noqa: BLE001 - every failure is a check result, never a traceback
        raise _NetError(f"GET {url}: {_describe(exc, ctx.timeout)}") from None


def _usd(v: Any) -> str:
    if isinstance(v, dict):
        v = v.get("value")
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "?"
    return f"{x:,.2f} USD"


# ------------------------------------------------------------------------------------------
# 1. config


def check_config(ctx: _Ctx) -> Check:
    try:
        from .live import UsExecutor, UsParams
    except Exception as exc:  # noqa: BLE001
        return Check("config", False, f"the executor module cannot be imported: {type(exc).__name__}: {exc}",
                     "install polybot with the live extra: pip install -e '.[live]'")  # fmt: skip
    known = list(UsParams.__struct_fields__)
    unknown = sorted(set(ctx.raw) - set(known))
    if unknown:
        return Check("config", False, f"executor params: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                     f"remove {', '.join(unknown)} from the polymarket-us executor's params (known: {', '.join(known)}); "
                     "secrets belong in the environment or the [secrets] file, never here")  # fmt: skip
    try:
        p = msgspec.convert(ctx.raw, UsParams)
    except msgspec.ValidationError as exc:
        return Check("config", False, describe_validation_error(exc, "executor params"),
                     "see adapters/polymarket_us/live.py UsParams for the allowed values")  # fmt: skip
    problems: list[str] = []
    try:
        UsExecutor(**ctx.raw)  # the executor's own checks (TIFs, positive timeouts, demo_key on loopback)
    except Exception as exc:  # noqa: BLE001
        problems.append(str(exc))
    for key, schemes, empty in (("api_url", ("http", "https"), False), ("ws_url", ("ws", "wss"), True)):
        v = getattr(p, key)
        if empty and v == "":
            continue
        u = urlsplit(v)
        if u.scheme not in schemes or not u.netloc:
            problems.append(f"{key}: {v!r} is not a {'/'.join(schemes)} URL")
    if problems:
        return Check("config", False, "executor params: " + "; ".join(problems),
                     "set api_url to an http(s) URL (https://api.polymarket.us), ws_url to a ws(s) URL "
                     "(wss://api.polymarket.us) or \"\"; see adapters/polymarket_us/live.py UsParams")  # fmt: skip
    ctx.p = p
    ctx.timeout = float(p.request_timeout_s)
    extra = ", dry run" if p.dry_run else ""
    extra += ", demo key" if p.demo_key else ""
    return Check("config", True, f"executor params valid ({p.api_url}, unknown_orders {p.unknown_orders}{extra})")


# ------------------------------------------------------------------------------------------
# 2. secrets file (the CLOB doctor's check, with this venue's key names)


def check_secrets(ctx: _Ctx) -> Check:
    c = check_secrets_file(ctx)  # type: ignore[arg-type] - it reads .cfg and sets .secrets_file_error
    fix = c.fix.replace(_CLOB_SECRET_KEYS + " only", "pmus_key_id, pmus_secret_key (and other known secrets)")
    fix = fix.replace(_CLOB_SECRET_KEYS, "pmus_key_id, pmus_secret_key")
    fix = fix.replace("POLYBOT_* environment variables", f"{KEY_ENV} / {SECRET_ENV}")
    return Check(c.name, c.ok, c.detail, fix)


# ------------------------------------------------------------------------------------------
# 3. the key


def check_key(ctx: _Ctx) -> Check:
    name = "key"
    if ctx.p is None and ctx.raw.get("demo_key") is True:
        return Check(name, None, "demo_key = true: needs a valid config (see config)")
    if ctx.p is not None and ctx.p.demo_key:
        from .sim import DEMO_KEY_ID, DEMO_SECRET_KEY, loopback_only

        bad = [k for k in ("api_url", "ws_url") if getattr(ctx.p, k) and not loopback_only(getattr(ctx.p, k))]
        if bad:
            return Check(name, False, f"demo_key = true, but {', '.join(bad)} is not a loopback URL: "
                                      "the simulator's published demo key opens nothing else",
                         f"remove demo_key and set real keys: {_FIX_KEY}")  # fmt: skip
        ctx.key_id, ctx.secret = DEMO_KEY_ID, DEMO_SECRET_KEY
        return Check(name, True, "the simulator's demo key (demo_key = true, loopback URLs only): never a real credential")
    key_id = ctx.secrets.get("pmus_key_id") or ""
    secret = ctx.secrets.get("pmus_secret_key") or ""
    ctx.secret, ctx.seen_key_id = secret, key_id  # redacted from every detail from here on, even if invalid
    missing = [f"pmus_key_id ({KEY_ENV})" if not key_id else "", f"pmus_secret_key ({SECRET_ENV})" if not secret else ""]
    missing = [m for m in missing if m]
    if missing:
        unread = (f" (the secrets file was not used: {ctx.secrets_file_error}; see secrets file)"
                  if ctx.secrets_file_error else "")  # fmt: skip
        return Check(name, False, f"missing: {', '.join(missing)}: not in the environment nor the secrets file{unread}",
                     _FIX_KEY)  # fmt: skip
    ctx.key_id = key_id
    try:
        check_secret(secret)
    except AuthError as exc:  # its messages name a length or "not base64", never the key
        ctx.key_id = ""
        return Check(name, False, f"pmus_secret_key is not a valid Ed25519 key ({exc})",
                     "use the secret key shown once when the API key was created at polymarket.us/developer: "
                     "base64 of a 32-byte Ed25519 seed (or 64 bytes: seed + public key); " + _FIX_KEY)  # fmt: skip
    try:
        importlib.import_module("polymarket_us.auth")  # the executor signs with the SDK's helper
    except Exception:  # noqa: BLE001
        ctx.key_id = ""
        return Check(name, False, "the polymarket-us SDK (it signs every request) is not installed",
                     "pip install -e '.[live]' (polymarket-us==2.4.1)")  # fmt: skip
    return Check(name, True, f"key id {describe_key(key_id)} with a valid Ed25519 secret key")


# ------------------------------------------------------------------------------------------
# 4. API reachable and the key accepted; 5. clock


async def check_api(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    name = "api"
    path = "/v1/account/balances"
    url = ctx.api_url + path
    ctx.t0 = time.time()
    try:
        status, body, headers = await _get(ctx, session, ctx.api_url, path, signed=True)
    except _NetError as exc:
        return Check(name, False, str(exc), "check api_url (https://api.polymarket.us), DNS, proxy and firewall settings")
    ctx.t1 = time.time()
    ctx.date = headers.get("Date")
    who = describe_key(ctx.key_id)
    if status in (401, 403):
        msg = _message(body)
        clock = ("; the venue refuses timestamps more than 30 s off its clock: see clock, enable NTP time sync"
                 if "timestamp" in msg.lower() else "")  # fmt: skip
        return Check(name, False, f"GET {url}: HTTP {status}: the venue refused the key {who}: {msg}",
                     "check pmus_key_id and pmus_secret_key: the key id and the secret key of the same API key "
                     f"(polymarket.us/developer), not revoked; in the environment {KEY_ENV} / {SECRET_ENV} or the "
                     f"[secrets] file{clock}")  # fmt: skip
    if status != 200:
        return Check(name, False, f"GET {url}: HTTP {status}: {_message(body)}",
                     "check api_url points at the Polymarket US API (https://api.polymarket.us); 5xx: retry later")  # fmt: skip
    data = _json(body)
    bals = data.get("balances") if isinstance(data, dict) else None
    ctx.api_ok = True
    if not isinstance(bals, list) or not bals or not isinstance(bals[0], dict):
        return Check(name, True, f"key {who} accepted by GET {url} (no balance in the answer)")
    b = bals[0]
    bp = b.get("buyingPower")
    warn = ""
    try:
        if float(bp.get("value") if isinstance(bp, dict) else bp) <= 0:
            warn = "warning: no buying power (deposit at polymarket.us); "
    except (TypeError, ValueError):
        pass
    return Check(name, True, f"{warn}key {who} accepted by GET {url}: balance {_usd(b.get('currentBalance'))}, "
                             f"buying power {_usd(bp)}")  # fmt: skip


def clock_check(date: str | None, t0: float, t1: float) -> Check:
    """The clock check from the venue's ``Date`` header and the local times around the request."""
    if not date:
        return Check("clock", None, "the venue's answer has no Date header to compare with")
    try:
        server = email.utils.parsedate_to_datetime(date).timestamp() + 0.5  # whole seconds: the middle of it
    except (TypeError, ValueError, IndexError, OverflowError):
        return Check("clock", None, f"the venue's Date header is not a date: {_short(date, 40)!r}")
    skew = (t0 + t1) / 2 - server  # > 0: local clock ahead
    rel = f"{abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the venue"
    if abs(skew) > SKEW_FAIL_S:
        return Check("clock", False, f"local clock is {rel} (the venue refuses requests more than 30 s off)",
                     "enable NTP time sync (Linux: timedatectl set-ntp true; or install chrony), then retry")  # fmt: skip
    if abs(skew) > SKEW_WARN_S:
        return Check("clock", True, f"warning: local clock is {rel} (the venue refuses more than 30 s): enable NTP time sync")
    return Check("clock", True, f"in sync with the venue (within {max(abs(skew), 1.0):.0f} s, by its Date header)")


# ------------------------------------------------------------------------------------------
# 6. private websocket


async def check_ws(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    name = "private websocket"
    if not ctx.ws_url:
        return Check(name, None, "ws_url = \"\": no private stream (fills and cancels from REST reconciliation only)")
    if not ctx.key_id:
        return Check(name, None, "needs a valid key (see key)")
    url = ctx.ws_url + PRIVATE_PATH
    try:
        headers = sign_headers(ctx.key_id, ctx.secret, "GET", PRIVATE_PATH)
    except Exception:  # noqa: BLE001
        return Check(name, False, "could not sign the handshake with this key", _FIX_KEY)
    try:
        async with asyncio.timeout(ctx.timeout):
            ws = await session.ws_connect(url, headers=headers, autoping=True, heartbeat=None)
            await ws.close()
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in (401, 403):
            return Check(name, False, f"{url}: handshake refused: HTTP {exc.status}: the venue refused the key "
                                      f"{describe_key(ctx.key_id)}",
                         f"check pmus_key_id and pmus_secret_key ({KEY_ENV} / {SECRET_ENV} or the [secrets] file)")  # fmt: skip
        return Check(name, False, f"{url}: WebSocket handshake refused: HTTP {exc.status}",
                     "check ws_url is the API's WebSocket base, e.g. wss://api.polymarket.us (or \"\" to run without)")  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"{url}: {_describe(exc, ctx.timeout)}",
                     "check ws_url, DNS, proxy and firewall settings (WebSockets must be allowed), or set ws_url = \"\"")  # fmt: skip
    return Check(name, True, f"{url}: signed handshake ok")


# ------------------------------------------------------------------------------------------
# 7. open orders, 8. positions


async def check_open_orders(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    name = "open orders"
    path = "/v1/orders/open"
    try:
        status, body, _ = await _get(ctx, session, ctx.api_url, path, signed=True)
    except _NetError as exc:
        return Check(name, False, str(exc), "check api_url and the network")
    data = _json(body)
    orders = data.get("orders") if isinstance(data, dict) else data
    if status != 200 or not isinstance(orders, list):
        return Check(name, False, f"GET {ctx.api_url + path}: HTTP {status}: {_message(body)}", "retry later")
    n = len(orders)
    slugs = sorted({str(o.get("marketSlug")) for o in orders if isinstance(o, dict) and o.get("marketSlug")})
    where = f" in {len(slugs)} market(s): {', '.join(slugs[:5])}{', …' if len(slugs) > 5 else ''}" if slugs else ""
    policy = ctx.p.unknown_orders if ctx.p is not None else str(ctx.raw.get("unknown_orders", "refuse"))
    if not n:
        return Check(name, True, "none at the venue")
    if policy == "refuse":
        data_dir = ctx.cfg.engine.data_dir
        return Check(name, False, f"{n} open order(s) at the venue{where}; with unknown_orders = \"refuse\" the daemon "
                                  f"refuses to start unless they are its journal's (orders it placed before a restart, "
                                  f"journal in {data_dir})",
                     "if another process trades this key, stop it and cancel its orders; to take them over set "
                     "unknown_orders = \"adopt\", to cancel them at start \"cancel\", to ignore them \"leave\"; "
                     "if this daemon placed them (same data_dir), it will recognise them")  # fmt: skip
    what = {"adopt": "takes them over", "cancel": "cancels those it does not know", "leave": "leaves those it does not know"}
    return Check(name, True, f"{n} open order(s) at the venue{where}; unknown_orders = \"{policy}\": the daemon "
                             f"{what.get(policy, 'handles them')}")  # fmt: skip


def _nonzero(v: Any) -> bool:
    try:
        return float(v) != 0
    except (TypeError, ValueError):
        return False


async def check_positions(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    name = "positions"
    path = "/v1/portfolio/positions"
    held: list[str] = []
    settled = 0
    cursor = ""
    for _ in range(MAX_PAGES):
        q = [("limit", "100")] + ([("cursor", cursor)] if cursor else [])
        try:
            status, body, _ = await _get(ctx, session, ctx.api_url, path, signed=True, query=q)
        except _NetError as exc:
            return Check(name, False, str(exc), "check api_url and the network")
        data = _json(body)
        pos = data.get("positions") if isinstance(data, dict) else None
        if status != 200 or not isinstance(pos, dict | list):
            return Check(name, False, f"GET {ctx.api_url + path}: HTTP {status}: {_message(body)}", "retry later")
        items = pos.items() if isinstance(pos, dict) else ((p.get("marketSlug", "?") if isinstance(p, dict) else "?", p)
                                                           for p in pos)  # fmt: skip
        for slug, p in items:
            if not isinstance(p, dict):
                continue
            if p.get("expired"):
                settled += 1
                continue
            net = p.get("netPositionDecimal")
            if _nonzero(net if net not in (None, "") else p.get("netPosition")):
                held.append(str(slug))
        nxt = str(data.get("nextCursor") or "") if isinstance(data, dict) else ""
        if not isinstance(data, dict) or data.get("eof", True) or not nxt or nxt == cursor:
            break
        cursor = nxt
    tail = f" ({settled} settled)" if settled else ""
    if not held:
        return Check(name, True, f"no net position in any market{tail}")
    eg = ", ".join(held[:5]) + (", …" if len(held) > 5 else "")
    return Check(name, True, f"net positions in {len(held)} market(s): {eg}{tail} (the daemon reconciles them at start)")


# ------------------------------------------------------------------------------------------
# 9. the feeds' markets


def _gateway_default() -> str:
    try:
        from .feed import GATEWAY_URL as url
    except Exception:  # noqa: BLE001
        return GATEWAY_URL
    return str(url)


async def _slug_state(ctx: _Ctx, session: aiohttp.ClientSession, gw: str, kind: str, slug: str,
                      sem: asyncio.Semaphore) -> str:  # fmt: skip
    """"" if it exists and is open, else why not."""
    path = f"/v1/market/slug/{quote(slug, safe='')}" if kind == "market" else f"/v1/events/slug/{quote(slug, safe='')}"
    async with sem:
        try:
            status, body, _ = await _get(ctx, session, gw, path)
        except _NetError as exc:
            return str(exc)
    if status == 404:
        return f"{kind} {slug}: not found"
    data = _json(body)
    if status != 200 or not isinstance(data, dict):
        return f"{kind} {slug}: HTTP {status}: {_message(body)}"
    m = data.get(kind)
    if not isinstance(m, dict):
        return f"{kind} {slug}: no {kind} in the answer"
    state = str(m.get("state") or "")
    word = state.removeprefix("MARKET_STATE_").lower()
    if m.get("closed") is True or m.get("active") is False or (kind == "market" and word and word != "open"):
        return f"{kind} {slug}: not open ({word or ('closed' if m.get('closed') else 'inactive')})"
    return ""


async def check_markets(ctx: _Ctx, session: aiohttp.ClientSession) -> list[Check]:
    feeds = [f for f in ctx.cfg.feeds if f.kind == "polymarket-us"]
    if not feeds:
        return [Check("markets", None, "no polymarket-us feed in the config")]
    out: list[Check] = []
    sem = asyncio.Semaphore(8)
    for i, f in enumerate(feeds):
        name = "markets" if len(feeds) == 1 else f"markets ({f.name or f'feed {i + 1}'})"
        gw = f.params.get("gateway_url", _gateway_default())
        markets, events = f.params.get("markets", []), f.params.get("events", [])
        if not isinstance(gw, str) or urlsplit(gw).scheme not in ("http", "https") or not urlsplit(gw).netloc:
            out.append(Check(name, False, f"feed params: gateway_url {gw!r} is not an http(s) URL",
                             f"set gateway_url = \"{_gateway_default()}\" (or remove it)"))  # fmt: skip
            continue
        if not isinstance(markets, list) or not isinstance(events, list) \
                or not all(isinstance(s, str) for s in [*markets, *events]):  # fmt: skip
            out.append(Check(name, False, "feed params: markets and events must be lists of slugs",
                             'e.g. markets = ["nba-lal-bos-2026-01-15"]'))  # fmt: skip
            continue
        if not markets and not events:
            out.append(Check(name, None, "the feed names no markets or events"))
            continue
        gw = gw.rstrip("/")
        todo = [("market", s) for s in markets] + [("event", s) for s in events]
        whys = await asyncio.gather(*(_slug_state(ctx, session, gw, k, s, sem) for k, s in todo))
        bad = [w for w in whys if w]
        what = " and ".join(x for x in (f"{len(markets)} market(s)" if markets else "",
                                        f"{len(events)} event(s)" if events else "") if x)  # fmt: skip
        if bad:
            out.append(Check(name, False, f"{len(bad)} of {what} at {gw}: " + "; ".join(bad[:5])
                             + ("; …" if len(bad) > 5 else ""),
                             "check the slugs (the venue's market page URL ends with the slug; GET "
                             f"{gw}/v1/markets?active=true lists open markets) and the feed's gateway_url; "
                             "a closed market has nothing to trade: remove it"))  # fmt: skip
        else:
            out.append(Check(name, True, f"{what} found and open at {gw}"))
    return out


# ------------------------------------------------------------------------------------------


async def run_doctor(cfg: Config, secrets: Secrets, params: dict[str, Any]) -> list[Check]:
    """All preflight checks, in report order. Never raises for a problem it can report."""
    ctx = _Ctx(cfg, secrets, dict(params))
    checks: list[Check] = []
    try:
        checks += [check_config(ctx), check_secrets(ctx), check_key(ctx)]
        api_why = ("needs a valid config (see config)" if ctx.p is None
                   else "needs a valid key (see key)" if not ctx.key_id else "")  # fmt: skip
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ctx.timeout)) as session:
            if api_why:
                checks += [Check("api", None, api_why), Check("clock", None, api_why)]
            else:
                checks.append(await check_api(ctx, session))
                checks.append(clock_check(ctx.date, ctx.t0, ctx.t1) if ctx.t1 else
                              Check("clock", None, "the API is not reachable (see api)"))  # fmt: skip
            checks.append(await check_ws(ctx, session) if ctx.p is not None
                          else Check("private websocket", None, "needs a valid config (see config)"))  # fmt: skip
            if ctx.api_ok:
                checks += list(await asyncio.gather(check_open_orders(ctx, session), check_positions(ctx, session)))
            else:
                why = api_why or "needs the API and an accepted key (see api)"
                checks += [Check("open orders", None, why), Check("positions", None, why)]
            checks += await check_markets(ctx, session)
    except Exception as exc:  # noqa: BLE001 - a bug or an odd environment: report, never a traceback
        checks.append(Check("checks", False, f"stopped early: {_describe(exc, ctx.timeout)}",
                            "report this as a bug in polybot doctor"))  # fmt: skip
    return [Check(c.name, c.ok, ctx.redact(c.detail), ctx.redact(c.fix)) for c in checks]
