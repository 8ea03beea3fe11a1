"""``polybot doctor``: preflight checks for the live CLOB executor.

Before a live session, check everything the executor needs and that a person can get wrong:
the executor params, the private key and API credentials, the wallet / signature-type setup,
pUSD balance and exchange allowances, clock skew, reachability of the REST, user-WebSocket and
Data APIs, the venue's geoblock, and the secrets file's permissions. Each result is a
:class:`Check` that says in plain words what is wrong and how to fix it.

The executor class exposes this module through a class attribute
``doctor_module = "adapters.polymarket.doctor"``; ``polybot doctor`` imports it and calls
:func:`run_doctor` then :func:`format_report`.

Secrets (private key, API key, secret, passphrase, and credentials derived here) never appear
in a check, an exception or a log line: the module never logs them, builds messages from
fixed texts and addresses only, and passes every message through a redaction of all secret
values as a last line of defence.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from polybot.config import Config, ConfigError, Secrets, describe_validation_error, load_secrets

from .signing import COLLATERAL, EXCHANGES, SIGNATURE_TYPES, ApiCreds, Credentials, l2_headers

#: executor params and their defaults (the live executor's, see adapters/polymarket/live.py)
DEFAULTS: dict[str, Any] = {
    "rest_url": "https://clob.polymarket.com",
    "ws_url": "wss://ws-subscriptions-clob.polymarket.com/ws/user",
    "data_url": "https://data-api.polymarket.com",
    "geoblock_url": "https://polymarket.com/api/geoblock",
    "chain_id": 137,
    "signature_type": "eoa",
    "funder": "",
    "dry_run": False,
    "heartbeat_s": 5.0,
    "request_timeout_s": 5.0,
}
EXCHANGE_NAMES = ("CTFExchangeV2", "neg-risk CTFExchangeV2", "ExchangeV3")
WALLET_HELP = ("choose it by how you log in to polymarket.com: email/Magic login = proxy, "
               "browser wallet (MetaMask, Coinbase Wallet, ...) = safe, deposit wallet = poly_1271; "
               "a plain key that holds the funds itself = eoa")  # fmt: skip
SKEW_FAIL_S = 5.0
SKEW_WARN_S = 2.0
_ADDR = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass
class Check:
    """One preflight result: ``ok`` True (passed), False (failed) or None (skipped)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


class _NetError(Exception):
    """A request that got no usable HTTP answer (message: URL and error, no secrets)."""


class _Ctx:
    def __init__(self, cfg: Config, secrets: Secrets, params: dict[str, Any]) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.p = {**DEFAULTS, **params}
        self.raw = params
        self.timeout = 5.0
        self.creds: Credentials | None = None  # the wallet (signer only: key check)
        self.api: ApiCreds | None = None  # working API creds (configured and verified, or derived)
        self.secret_values: set[str] = {v for k in ("private_key", "api_key", "api_secret", "api_passphrase")
                                        if (v := secrets.get(k))}  # fmt: skip
        self.rest_ok = False
        self.config_ok = True
        self.secrets_file_error = ""

    def url(self, path: str) -> str:
        return str(self.p["rest_url"]).rstrip("/") + path

    def remember(self, api: ApiCreds) -> None:
        self.secret_values.update(v for v in (api.api_key, api.secret, api.passphrase) if v)


# ------------------------------------------------------------------------------------------
# HTTP helpers: every failure becomes a _NetError naming the URL and the error


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"no answer within {timeout:g} s (timeout)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}" if exc.os_error else "cannot connect"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _request(ctx: _Ctx, session: aiohttp.ClientSession, url: str,
                   headers: dict[str, str] | None = None) -> tuple[int, str]:  # fmt: skip
    try:
        async with session.get(url, headers=headers, allow_redirects=True) as resp:
            body = await resp.text(errors="replace")
            return resp.status, body
    except Exception as exc:  # noqa: BLE001 - every failure is a check result, never a traceback
        raise _NetError(f"GET {url}: {_describe(exc, ctx.timeout)}") from None


def _short(body: str, n: int = 200) -> str:
    body = " ".join(body.split())
    return body if len(body) <= n else body[:n] + "…"


def _http_error(url: str, status: int, body: str) -> str:
    return f"GET {url}: HTTP {status}" + (f": {_short(body)}" if body.strip() else "")


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------
# 1. config


def _executor_params_schema() -> Any:
    """The live executor's params struct, when it is installed (its keys and types are the truth)."""
    try:
        from .live import ClobParams
    except Exception:  # noqa: BLE001 - doctor works without the executor module
        return None
    return ClobParams


def check_config(ctx: _Ctx) -> Check:
    p, raw = ctx.p, ctx.raw
    problems: list[str] = []
    fixes: list[str] = []
    schema = _executor_params_schema()
    known = list(DEFAULTS) + ([f for f in schema.__struct_fields__ if f not in DEFAULTS] if schema is not None else [])
    unknown = sorted(set(raw) - set(known))
    if unknown:
        problems.append(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
        fixes.append(f"remove {', '.join(unknown)} from [executor] params (known: {', '.join(known)}); "
                     "secrets belong in the environment or the [secrets] file, never here")  # fmt: skip
    if schema is not None:
        extra = {k: v for k, v in raw.items() if k in known and k not in DEFAULTS}
        try:
            msgspec.convert(extra, schema)
        except msgspec.ValidationError as exc:
            problems.append(describe_validation_error(exc, "executor.params").split(": ", 1)[1])
            fixes.append("see adapters/polymarket/live.py ClobParams for the allowed values")
    for key, schemes in (("rest_url", ("http", "https")), ("data_url", ("http", "https")),
                         ("geoblock_url", ("http", "https")), ("ws_url", ("ws", "wss"))):  # fmt: skip
        v = p[key]
        if not isinstance(v, str):
            problems.append(f"{key}: expected a string, got {type(v).__name__}")
            fixes.append(f"set {key} to a {' or '.join(schemes)} URL")
            continue
        u = urlsplit(v)
        if u.scheme not in schemes or not u.netloc:
            problems.append(f"{key}: {v!r} is not a {'/'.join(schemes)} URL")
            fixes.append(f"set {key} to a {' or '.join(schemes)} URL, e.g. {DEFAULTS[key]}")
    cid = p["chain_id"]
    if not isinstance(cid, int) or isinstance(cid, bool):
        problems.append(f"chain_id: expected an integer, got {type(cid).__name__}")
        fixes.append("set chain_id = 137 (Polygon mainnet)")
    elif cid not in EXCHANGES:
        problems.append(f"chain_id: {cid} is not a known chain (known: {', '.join(map(str, sorted(EXCHANGES)))})")
        fixes.append("set chain_id = 137 (Polygon mainnet) or 80002 (Amoy testnet)")
    st = p["signature_type"]
    if not isinstance(st, str) or st not in SIGNATURE_TYPES:
        problems.append(f"signature_type: {st!r} is not one of {', '.join(SIGNATURE_TYPES)}")
        fixes.append(f"set signature_type: {WALLET_HELP}")
    funder = p["funder"]
    if not isinstance(funder, str):
        problems.append(f"funder: expected a string, got {type(funder).__name__}")
        fixes.append('set funder = "0x…" (your Polymarket wallet address) or "" for eoa')
    elif funder and not _ADDR.fullmatch(funder):
        problems.append(f"funder: {funder!r} is not a 0x address (0x and 40 hex digits)")
        fixes.append("copy the address that holds your funds (polymarket.com profile / deposit address)")
    elif not funder and isinstance(st, str) and st in SIGNATURE_TYPES and st != "eoa":
        problems.append(f"funder: required with signature_type {st} (the wallet that holds the funds)")
        fixes.append("set funder to your Polymarket wallet address (shown on polymarket.com under your "
                     "profile / deposit address), or use signature_type eoa if the key holds the funds itself")  # fmt: skip
    if not isinstance(p["dry_run"], bool):
        problems.append(f"dry_run: expected true or false, got {type(p['dry_run']).__name__}")
        fixes.append("set dry_run = false (or true to sign without sending)")
    for key in ("heartbeat_s", "request_timeout_s"):
        v = p[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or (v == 0 and key == "request_timeout_s"):
            problems.append(f"{key}: expected a positive number of seconds, got {v!r}")
            fixes.append(f"set {key} = {DEFAULTS[key]}")
    if isinstance(p["request_timeout_s"], int | float) and not isinstance(p["request_timeout_s"], bool) \
            and p["request_timeout_s"] > 0:  # fmt: skip
        ctx.timeout = float(p["request_timeout_s"])
    if isinstance(p["heartbeat_s"], int | float) and not isinstance(p["heartbeat_s"], bool) and p["heartbeat_s"] >= 10:
        problems.append(f"heartbeat_s: {p['heartbeat_s']} s is too slow: the venue cancels all orders after 10 s without a heartbeat")
        fixes.append("set heartbeat_s = 5.0")
    if problems:
        ctx.config_ok = False
        return Check("config", False, "executor.params: " + "; ".join(problems), "; ".join(fixes))
    return Check("config", True, f"executor.params valid (chain {cid}, signature_type {st}"
                                 f"{', dry run' if p['dry_run'] else ''})")  # fmt: skip


def _urls_ok(ctx: _Ctx, *keys: str) -> bool:
    for key in keys:
        v = ctx.p.get(key)
        if not isinstance(v, str):
            return False
        u = urlsplit(v)
        if u.scheme not in ("http", "https", "ws", "wss") or not u.netloc:
            return False
    return True


# ------------------------------------------------------------------------------------------
# 8. secrets file


def check_secrets_file(ctx: _Ctx) -> Check:
    f = ctx.cfg.secrets.file
    if not f:
        return Check("secrets file", None, "no [secrets] file configured (secrets come from POLYBOT_* environment variables)")
    p = Path(os.path.expanduser(f))
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        ctx.secrets_file_error = "it does not exist"
        return Check("secrets file", False, f"{p}: cannot read: {exc.strerror or type(exc).__name__}",
                     f"create {p} (TOML: private_key, api_key, api_secret, api_passphrase) and chmod 600 {p}, "
                     "or remove [secrets] file and use POLYBOT_* environment variables")  # fmt: skip
    if mode & 0o077:
        who = " and ".join(w for w, bits in (("group", 0o070), ("others", 0o007)) if mode & bits)
        ctx.secrets_file_error = "it is readable by other users"
        return Check("secrets file", False, f"{p} is accessible by {who} (mode {stat.S_IMODE(mode):04o}): "
                                            "the executor refuses to read it", f"chmod 600 {p}")  # fmt: skip
    try:
        load_secrets(ctx.cfg, env={})
    except ConfigError as exc:  # its messages name the file and key, never a value
        ctx.secrets_file_error = "it could not be read"
        return Check("secrets file", False, str(exc),
                     f"fix {p}: TOML with string values for private_key, api_key, api_secret, api_passphrase only")  # fmt: skip
    return Check("secrets file", True, f"{p} (mode {stat.S_IMODE(mode):04o})")


# ------------------------------------------------------------------------------------------
# 2. private key and API credentials


def check_private_key(ctx: _Ctx) -> Check:
    pk = ctx.secrets.get("private_key")
    where = f"the secrets file {ctx.cfg.secrets.file}" if ctx.cfg.secrets.file else "the secrets file ([secrets] file)"
    if not pk:
        unread = f" (the secrets file was not used: {ctx.secrets_file_error}; see secrets file)" if ctx.secrets_file_error else ""
        return Check("private key", False, "no private key: POLYBOT_PRIVATE_KEY is not set and no private_key in the "
                                           f"secrets file{unread}",
                     f"export POLYBOT_PRIVATE_KEY=0x… (the signer's key, 64 hex digits) or set private_key in {where}")  # fmt: skip
    chain = ctx.p["chain_id"] if isinstance(ctx.p["chain_id"], int) else 137
    try:
        ctx.creds = Credentials(pk, chain_id=chain)
    except Exception:  # noqa: BLE001 - never pass the library's message on: it may echo the key
        return Check("private key", False, "the private key is not a valid secp256k1 private key",
                     "use the wallet's private key: 0x followed by 64 hex digits (export it from your wallet; "
                     "for email/Magic logins from polymarket.com's 'export private key')")  # fmt: skip
    src = ("from POLYBOT_PRIVATE_KEY; " if os.environ.get("POLYBOT_PRIVATE_KEY") == pk
           else "from the secrets file; " if ctx.cfg.secrets.file else "")  # fmt: skip
    return Check("private key", True, f"valid ({src}signer address {ctx.creds.address})")


def _configured_api(ctx: _Ctx) -> tuple[ApiCreds | None, list[str]]:
    names = {"api_key": "POLYBOT_API_KEY", "api_secret": "POLYBOT_API_SECRET", "api_passphrase": "POLYBOT_API_PASSPHRASE"}
    vals = {k: ctx.secrets.get(k) for k in names}
    missing = [k for k, v in vals.items() if not v]
    if missing:
        return None, missing
    return ApiCreds(vals["api_key"] or "", vals["api_secret"] or "", vals["api_passphrase"] or ""), []


async def _derive(ctx: _Ctx, session: aiohttp.ClientSession) -> tuple[ApiCreds | None, str]:
    """L1 ``GET /auth/derive-api-key``: (creds, "") or (None, why)."""
    assert ctx.creds is not None
    url = ctx.url("/auth/derive-api-key")
    try:
        headers = ctx.creds.l1_headers()
    except Exception:  # noqa: BLE001
        return None, "could not sign the L1 request with this key"
    try:
        status, body = await _request(ctx, session, url, headers)
    except _NetError as exc:
        return None, str(exc)
    data = _json(body)
    if status == 200 and isinstance(data, dict) and all(isinstance(data.get(k), str) and data.get(k)
                                                       for k in ("apiKey", "secret", "passphrase")):  # fmt: skip
        api = ApiCreds(data["apiKey"], data["secret"], data["passphrase"])
        ctx.remember(api)
        return api, ""
    if status == 200:
        return None, f"GET {url}: unexpected answer (no apiKey/secret/passphrase)"
    return None, _http_error(url, status, _redact_text(body, ctx.secret_values))


async def check_api_creds(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    name = "api credentials"
    if ctx.creds is None:
        return Check(name, None, "needs a valid private key")
    configured, missing = _configured_api(ctx)
    create_fix = (f"create them once with the L1 request POST {ctx.url('/auth/api-key')} signed by this key "
                  "(py-clob-client-v2: ClobClient(host, key=..., chain_id=...).create_or_derive_api_key()), then set "
                  "api_key, api_secret, api_passphrase in the secrets file or POLYBOT_API_KEY/_SECRET/_PASSPHRASE")  # fmt: skip
    if configured is None:
        api, why = await _derive(ctx, session)
        partial = len(missing) < 3
        if api is None:
            return Check(name, False, f"{'incomplete: ' + ', '.join(missing) + ' missing' if partial else 'not configured'}, "
                                      f"and deriving them from the wallet failed: {why}",
                         ("check the clock (L1 requests carry a timestamp) and chain_id; " if "401" in why else "")
                         + create_fix)  # fmt: skip
        ctx.api = api
        if partial:
            return Check(name, False, f"incomplete: {', '.join(missing)} missing (set all three or none); "
                                      "the wallet's own key can be derived via L1 /auth/derive-api-key",
                         "set all of api_key, api_secret, api_passphrase (from GET /auth/derive-api-key) or remove them all "
                         "to let them be derived from the private key")  # fmt: skip
        return Check(name, True, f"not configured; derivable from the wallet via L1 GET {ctx.url('/auth/derive-api-key')} "
                                 "(the executor derives them at start, and stores them in the secrets file "
                                 "when store_credentials is on)")  # fmt: skip
    url = ctx.url("/data/orders")
    try:
        headers = l2_headers(configured, ctx.creds.address, "GET", "/data/orders")
    except Exception:  # noqa: BLE001 - e.g. a secret that is not base64url
        return Check(name, False, "api_secret is not a valid base64url secret: cannot sign L2 requests",
                     f"derive the credentials again with L1 GET {ctx.url('/auth/derive-api-key')} and replace all three")  # fmt: skip
    try:
        status, body = await _request(ctx, session, url, headers)
    except _NetError as exc:
        return Check(name, False, f"could not verify them: {exc}", "check rest_url and the network")
    if status == 200:
        ctx.api = configured
        return Check(name, True, f"configured and accepted by L2 GET {url} for signer {ctx.creds.address}")
    if status == 401:
        derived, _ = await _derive(ctx, session)
        if derived is not None:
            ctx.api = derived  # for the balance checks
        hint = (" (this wallet's own credentials, derived via L1, do work: use those)" if derived is not None else "")
        return Check(name, False, f"L2 GET {url} answered 401: the API key does not belong to this wallet "
                                  f"({ctx.creds.address}) or was revoked{hint}",
                     f"derive again with L1 GET {ctx.url('/auth/derive-api-key')} signed by this private key "
                     "(py-clob-client-v2: ClobClient(host, key=..., chain_id=...).derive_api_key()), or create new ones with "
                     "POST /auth/api-key, and replace api_key, api_secret, api_passphrase")  # fmt: skip
    return Check(name, False, f"could not verify them: {_http_error(url, status, _redact_text(body, ctx.secret_values))}",
                 "retry later; if it persists, derive the credentials again via L1 /auth/derive-api-key")  # fmt: skip


# ------------------------------------------------------------------------------------------
# 3. wallet and signature type


def check_wallet(ctx: _Ctx) -> Check:
    name = "wallet"
    st, funder = ctx.p["signature_type"], ctx.p["funder"]
    if ctx.creds is None:
        return Check(name, None, "needs a valid private key")
    if not isinstance(st, str) or st not in SIGNATURE_TYPES or not isinstance(funder, str):
        return Check(name, None, "needs a valid signature_type and funder (see config)")
    signer = ctx.creds.address
    if st == "eoa":
        if funder and funder.lower() != signer.lower():
            return Check(name, False, f"signature_type eoa with funder {funder}, but the signer is {signer}: an EOA "
                                      "trades from its own address",
                         "if the funds are in your Polymarket wallet, keep funder and set signature_type "
                         f"({WALLET_HELP}); if the key holds the funds itself, set funder = \"\"")  # fmt: skip
        return Check(name, True, f"eoa: signer {signer} holds the funds and signs (signature type 0)")
    if not funder:
        return Check(name, False, f"signature_type {st} needs a funder (the wallet that holds the funds); none set",
                     f"set funder to your Polymarket wallet address (polymarket.com profile / deposit address); signature_type: {WALLET_HELP}")  # fmt: skip
    if not _ADDR.fullmatch(funder):
        return Check(name, None, "needs a valid funder address (see config)")
    if funder.lower() == signer.lower():
        return Check(name, False, f"signature_type {st} with funder = the signer {signer}: that is an EOA setup",
                     f"set signature_type = \"eoa\" (and funder = \"\"), or set funder to your Polymarket wallet address; signature_type: {WALLET_HELP}")  # fmt: skip
    kind = {"proxy": "Polymarket proxy wallet (email/Magic login)", "safe": "Gnosis Safe (browser-wallet login)",
            "poly_1271": "deposit wallet (ERC-1271)"}[st]  # fmt: skip
    return Check(name, True, f"{st} (signature type {SIGNATURE_TYPES[st]}): signer {signer} signs for the {kind} {funder}")


# ------------------------------------------------------------------------------------------
# 4. balance and allowances


def _fmt_pusd(units: int) -> str:
    whole, frac = divmod(abs(units), 1_000_000)
    return f"{'-' if units < 0 else ''}{whole:,}.{frac:06d}".rstrip("0").rstrip(".") + " pUSD"


async def check_balance(ctx: _Ctx, session: aiohttp.ClientSession) -> list[Check]:
    if ctx.api is None or ctx.creds is None:
        why = "needs working API credentials" if ctx.creds is not None else "needs a valid private key"
        return [Check("balance", None, why), Check("allowance", None, why)]
    st = ctx.p["signature_type"]
    if not isinstance(st, str) or st not in SIGNATURE_TYPES:
        return [Check("balance", None, "needs a valid signature_type"), Check("allowance", None, "needs a valid signature_type")]
    n = SIGNATURE_TYPES[st]
    url = ctx.url(f"/balance-allowance?asset_type=COLLATERAL&signature_type={n}")
    try:
        headers = l2_headers(ctx.api, ctx.creds.address, "GET", "/balance-allowance")
        status, body = await _request(ctx, session, url, headers)
    except _NetError as exc:
        return [Check("balance", False, str(exc), "check rest_url and the network"),
                Check("allowance", None, "no balance/allowance answer")]  # fmt: skip
    data = _json(body)
    if status != 200 or not isinstance(data, dict):
        msg = _http_error(url, status, _redact_text(body, ctx.secret_values)) if status != 200 else f"GET {url}: not JSON"
        return [Check("balance", False, msg, "check the API credentials (see api credentials) and retry"),
                Check("allowance", None, "no balance/allowance answer")]  # fmt: skip
    holder = ctx.p["funder"] if st != "eoa" and ctx.p["funder"] else ctx.creds.address
    out: list[Check] = []
    try:
        balance = int(str(data.get("balance", "")))
    except ValueError:
        out.append(Check("balance", False, f"GET {url}: no balance in the answer", "retry later"))
    else:
        if balance <= 0:
            out.append(Check("balance", False, f"pUSD balance of {holder} is 0",
                             f"deposit to your Polymarket wallet on polymarket.com, or wrap USDC.e into pUSD "
                             f"({COLLATERAL}) via the CollateralOnramp, sending it to {holder}; then GET "
                             f"{ctx.url('/balance-allowance/update')}?asset_type=COLLATERAL to refresh the venue's view"))  # fmt: skip
        else:
            out.append(Check("balance", True, f"{_fmt_pusd(balance)} at {holder}"))
    chain = ctx.p["chain_id"] if isinstance(ctx.p["chain_id"], int) and ctx.p["chain_id"] in EXCHANGES else 137
    allowances = data.get("allowances")
    if not isinstance(allowances, dict):
        single = data.get("allowance")
        if single is None:
            out.append(Check("allowance", False, f"GET {url}: no allowances in the answer", "retry later"))
            return out
        allowances = {a: single for a in EXCHANGES[chain]}
    by_addr = {str(k).lower(): v for k, v in allowances.items()}
    zero: list[str] = []
    for ex_name, addr in zip(EXCHANGE_NAMES, EXCHANGES[chain], strict=True):
        try:
            amount = int(str(by_addr.get(addr.lower(), "0")))
        except ValueError:
            amount = 0
        if amount <= 0:
            zero.append(f"{ex_name} {addr}")
    if zero:
        out.append(Check("allowance", False, f"pUSD allowance of {holder} is 0 for " + ", ".join(zero),
                         f"approve pUSD ({COLLATERAL}) spending for " + ", ".join(z.split()[-1] for z in zero)
                         + f" from {holder}: ERC-20 approve(exchange, max) sent by the wallet (for proxy/safe wallets "
                         "polymarket.com's 'Enable trading' does it); conditional tokens also need "
                         "setApprovalForAll(exchange) to sell; then GET /balance-allowance/update to refresh"))  # fmt: skip
    else:
        out.append(Check("allowance", True, f"pUSD approved for all {len(set(EXCHANGES[chain]))} exchanges"))
    return out


# ------------------------------------------------------------------------------------------
# 5. clock, 6. reachability, 7. geoblock


def _parse_time(body: str) -> float | None:
    text = body.strip()
    v: Any
    try:
        v = float(text)
    except ValueError:
        v = _json(text)
        if isinstance(v, dict):
            v = next((v[k] for k in ("time", "timestamp", "server_time") if k in v), None)
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    v = float(v)
    if v > 1e14:  # ns / µs / ms
        while v > 1e11:
            v /= 1000
    elif v > 1e11:
        v /= 1000
    return v


async def check_clock(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    url = ctx.url("/time")
    t0 = time.time()
    try:
        status, body = await _request(ctx, session, url)
    except _NetError as exc:
        return Check("clock", False, str(exc), "check rest_url and the network")
    t1 = time.time()
    server = _parse_time(body) if status == 200 else None
    if server is None:
        return Check("clock", False, _http_error(url, status, body) if status != 200 else f"GET {url}: not a time: {_short(body, 60)}",
                     "check rest_url points at the CLOB")  # fmt: skip
    local = (t0 + t1) / 2
    skew = local - server  # > 0: local clock ahead
    rel = f"{abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the venue"
    if abs(skew) > SKEW_FAIL_S:
        return Check("clock", False, f"local clock is {rel} (more than {SKEW_FAIL_S:g} s): signed requests will be refused",
                     "enable NTP time sync (Linux: timedatectl set-ntp true; or install chrony), then retry")  # fmt: skip
    if abs(skew) >= SKEW_WARN_S:
        return Check("clock", True, f"warning: local clock is {rel} (the venue's time is whole seconds; "
                                    "keep it under 2 s: enable NTP time sync)")  # fmt: skip
    return Check("clock", True, f"in sync with the venue (within {max(abs(skew), 1.0):.0f} s)")


async def check_rest(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    url = ctx.url("/ok")
    try:
        status, body = await _request(ctx, session, url)
    except _NetError as exc:
        return Check("rest", False, str(exc), "check rest_url, DNS, proxy and firewall settings")
    if status != 200:
        return Check("rest", False, _http_error(url, status, body),
                     "check rest_url points at the CLOB (https://clob.polymarket.com); 503 means trading is disabled for now")  # fmt: skip
    ctx.rest_ok = True
    return Check("rest", True, f"GET {url}: {_short(body, 40) or 'HTTP 200'}")


async def check_ws(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    url = str(ctx.p["ws_url"])
    try:
        async with asyncio.timeout(ctx.timeout):
            ws = await session.ws_connect(url, autoping=True, heartbeat=None)
            await ws.close()
    except aiohttp.WSServerHandshakeError as exc:
        return Check("user websocket", False, f"{url}: WebSocket handshake refused: HTTP {exc.status}",
                     "check ws_url is the user channel, e.g. wss://ws-subscriptions-clob.polymarket.com/ws/user")  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        return Check("user websocket", False, f"{url}: {_describe(exc, ctx.timeout)}",
                     "check ws_url, DNS, proxy and firewall settings (WebSockets must be allowed)")  # fmt: skip
    return Check("user websocket", True, f"{url}: WebSocket handshake ok")


async def check_data(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    url = str(ctx.p["data_url"])
    try:
        status, body = await _request(ctx, session, url)
    except _NetError as exc:
        return Check("data api", False, str(exc), "check data_url, DNS, proxy and firewall settings")
    if status >= 500:
        return Check("data api", False, _http_error(url, status, body), "the Data API is down: retry later")
    return Check("data api", True, f"GET {url}: HTTP {status}")


async def check_geoblock(ctx: _Ctx, session: aiohttp.ClientSession) -> Check:
    url = str(ctx.p["geoblock_url"])
    try:
        status, body = await _request(ctx, session, url)
    except _NetError as exc:
        return Check("geoblock", False, str(exc), "check geoblock_url and the network")
    data = _json(body)
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("blocked"), bool):
        return Check("geoblock", False, _http_error(url, status, body) if status != 200 else f"GET {url}: unexpected answer: {_short(body, 80)}",
                     f"check geoblock_url (default {DEFAULTS['geoblock_url']})")  # fmt: skip
    where = ", ".join(str(data[k]) for k in ("country", "region") if data.get(k)) or "unknown location"
    ip = f", IP {data['ip']}" if data.get("ip") else ""
    if data["blocked"]:
        return Check("geoblock", False, f"blocked ({where}{ip}): Polymarket does not accept orders from this location",
                     "run from a location where Polymarket permits trading; orders from here will be rejected")  # fmt: skip
    return Check("geoblock", True, f"not blocked ({where}{ip})")


# ------------------------------------------------------------------------------------------


def _redact_text(text: str, secrets: set[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= 4 and s in text:
            text = text.replace(s, "***")
    return text


async def run_doctor(cfg: Config, secrets: Secrets, params: dict[str, Any]) -> list[Check]:
    """All preflight checks, in report order. Never raises for a problem it can report."""
    ctx = _Ctx(cfg, secrets, dict(params))
    checks: list[Check] = [check_config(ctx), check_secrets_file(ctx), check_private_key(ctx), check_wallet(ctx)]
    net: list[Check] = []
    try:
        timeout = aiohttp.ClientTimeout(total=ctx.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            skip = "the URL is not valid (see config)"
            jobs: dict[str, Any] = {}
            for name, key, fn in (("rest", "rest_url", check_rest), ("user websocket", "ws_url", check_ws),
                                  ("data api", "data_url", check_data), ("geoblock", "geoblock_url", check_geoblock)):  # fmt: skip
                jobs[name] = fn(ctx, session) if _urls_ok(ctx, key) else None
            results = await asyncio.gather(*(j for j in jobs.values() if j is not None))
            it = iter(results)
            first = {name: (next(it) if j is not None else Check(name, None, skip)) for name, j in jobs.items()}
            if ctx.rest_ok:
                clock, api = await asyncio.gather(check_clock(ctx, session), check_api_creds(ctx, session))
                bal = await check_balance(ctx, session)
            else:
                why = "the CLOB REST API is not reachable (see rest)" if _urls_ok(ctx, "rest_url") else skip
                clock, api = Check("clock", None, why), Check("api credentials", None, why)
                bal = [Check("balance", None, why), Check("allowance", None, why)]
            net = [first["rest"], first["user websocket"], first["data api"], clock, first["geoblock"], api, *bal]
    except Exception as exc:  # noqa: BLE001 - a bug or an odd environment: report, never a traceback
        net.append(Check("network checks", False, f"stopped early: {type(exc).__name__}: {_describe(exc, ctx.timeout)}",
                         "report this as a bug in polybot doctor"))  # fmt: skip
    out = checks + net
    return [Check(c.name, c.ok, _redact_text(c.detail, ctx.secret_values), _redact_text(c.fix, ctx.secret_values))
            for c in out]  # fmt: skip


def format_report(checks: list[Check]) -> str:
    """One line per check: ``ok   name: detail``, ``FAIL name: detail`` + ``     fix: ...``,
    ``skip name: why``; then a summary line."""
    lines: list[str] = []
    for c in checks:
        if c.ok is None:
            lines.append(f"skip {c.name}: {c.detail}")
        elif c.ok:
            lines.append(f"ok   {c.name}: {c.detail}")
        else:
            lines.append(f"FAIL {c.name}: {c.detail}")
            if c.fix:
                lines.append(f"     fix: {c.fix}")
    failed = sum(c.ok is False for c in checks)
    passed = sum(c.ok is True for c in checks)
    skipped = sum(c.ok is None for c in checks)
    verdict = "ready for live trading" if not failed else "NOT ready: fix the failed checks above"
    lines.append(f"doctor: {passed} ok, {failed} failed, {skipped} skipped: {verdict}")
    return "\n".join(lines)
