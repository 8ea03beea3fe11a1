"""The daemon's HTTP API (aiohttp), bound to 127.0.0.1 by default.

Reads (``GET /api/...``) show what the kernel holds: status, positions and PnL, open orders,
recent fills, order steps and risk rejections, markets with their top of book, the PnL series.
Controls (``POST /api/control/...``, ``POST /api/strategies/{name}/...``) never touch the kernel
directly: each becomes one control input through the kernel's one door (source ``control``), so
it is journaled and replays like any other input; the answer comes once the kernel has processed
it. ``/critical`` answers 503 for external monitors when trading is halted, a feed has been down
or a book unhealthy for longer than configured. ``/ws`` pushes live updates, ``/metrics`` is the
Prometheus exposition, ``/openapi.json`` describes every route, ``/`` is the dashboard.

Auth: every mutating route needs ``Authorization: Bearer <token>``. On a loopback address reads
are open; on any other address every route but ``/critical`` needs the token (a browser's
WebSocket may give it as ``?token=``), and :func:`resolve_token` refuses to start without one.
The token is compared in constant time and never logged, journaled or returned.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from ..config import ApiConfig, ConfigError
from ..events import CancelAll, ChainAction, ControlEvent, EnableStrategy, Flatten, Halt, Reduce, Resume, SetParams
from ..monitor import NS, Monitor
from ..strategy import convert_params, params_table
from ..units import from_units, to_units

TOKEN_FILE = "api_token"


def _enc_hook(obj: Any) -> Any:
    """What msgspec cannot encode on its own: an int subclass (a ``Units`` param nested where
    ``params_table`` does not reach) as its int, anything else as its text."""
    return int(obj) if isinstance(obj, int) else str(obj)


_ENC = msgspec.json.Encoder(enc_hook=_enc_hook)
JSON = "application/json"

Reason = Annotated[str, msgspec.Meta(max_length=500, description="why (journaled with the command)")]


class ControlBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of halt, resume, reduce, enable and disable (may be empty)."""

    reason: Reason = ""


class FlattenBody(ControlBody, forbid_unknown_fields=True, kw_only=True):
    max_slippage: Annotated[str, msgspec.Meta(description="how far below the best bid it may sell, a price such as \"0.02\" (default: risk.flatten_max_slippage)")] | None = None


class CancelAllBody(ControlBody, forbid_unknown_fields=True, kw_only=True):
    strategy: Annotated[str, msgspec.Meta(description="only this strategy's orders (default: all)")] = ""


class ParamsBody(ControlBody, forbid_unknown_fields=True, kw_only=True):
    params: Annotated[dict[str, Any], msgspec.Meta(description="params to change (the others keep their values)")]


class ChainBody(ControlBody, forbid_unknown_fields=True, kw_only=True):
    """Body of an on-chain action (merge, split, redeem, convert)."""

    market: Annotated[str, msgspec.Meta(description="the market's condition id (convert: optional, from asset_ids)")] = ""
    amount: Annotated[str, msgspec.Meta(description="shares, a decimal such as \"25\" (not for redeem)")] = ""
    strategy: Annotated[str, msgspec.Meta(description="whose shares (default: the account's)")] = ""
    asset_ids: Annotated[list[str], msgspec.Meta(description="convert: the NO token ids to convert")] = []


CHAIN_ACTIONS = ("merge", "split", "redeem", "convert")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def validation_error(exc: msgspec.ValidationError, prefix: str = "") -> ApiError:
    """A msgspec validation error as a 422 naming the field (``params.edge``, ``reason``)."""
    m = _AT.match(str(exc))
    msg = (m.group("msg") if m else str(exc)).replace("`", "")
    path = (m.group("path") or "") if m else ""
    field = path.replace("[...]", "").lstrip(".").replace("[", ".").replace("]", "")  # [...]: a dict value
    for pat in (r"Object contains unknown field (\S+)", r"Object missing required field (\S+)"):
        mm = re.match(pat, msg)
        if mm:
            field = f"{field}.{mm.group(1)}" if field else mm.group(1)
            msg = "unknown field" if "unknown" in pat else "required field is missing"
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    msg = msg[:1].lower() + msg[1:]
    return ApiError(422, f"{field or 'body'}: {msg}", field or None)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_host(host: str) -> bool:
    """Is a Host header (``name[:port]``, ``[v6]:port``) a loopback name?"""
    name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.lower() == "localhost" or is_loopback(name)


def resolve_token(cfg: ApiConfig, secret: str | None, data_dir: Path, file: str = "<config>") -> tuple[str, str]:
    """The bearer token and where it came from. A configured secret wins; on a loopback address
    a random one is generated into ``<data_dir>/api_token`` (mode 0600, reused across restarts);
    on any other address there must be one (:class:`ConfigError` naming ``api.host``)."""
    if secret:
        if len(secret) < 16:
            raise ConfigError(f"{file}: api_token: the API token must be at least 16 characters")
        return secret, "secret"
    if not is_loopback(cfg.host):
        raise ConfigError(f"{file}: api.host: {cfg.host} is not a loopback address: the API refuses to start there "
                          "without a token (set POLYBOT_API_TOKEN or api_token in the secrets file)")  # fmt: skip
    path = data_dir / TOKEN_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        tok = path.read_text().strip()
        if len(tok) >= 16:
            return tok, str(path)
    tok = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    return tok, str(path)


class Route(msgspec.Struct, frozen=True):
    method: str
    path: str
    handler: str
    auth: str  # "open" | "read" | "write"
    summary: str
    body: type | None = None
    tag: str = "read"
    content: str = JSON


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", "dashboard", "open", "The dashboard (one HTML page, no build step)", tag="ui", content="text/html"),
    Route("GET", "/api/status", "status", "read", "Mode, trading state, feeds and their health, books, strategies, PnL"),
    Route("GET", "/api/positions", "positions", "read", "Positions per strategy and asset, YES+NO pairs (pair cost, locked profit), PnL"),
    Route("GET", "/api/orders", "orders", "read", "Open orders"),
    Route("GET", "/api/orders/steps", "order_steps", "read", "Recent order lifecycle steps (newest last)"),
    Route("GET", "/api/fills", "fills", "read", "Recent fills (newest last)"),
    Route("GET", "/api/rejections", "rejections", "read", "Recent risk rejections and executor rejections by reason"),
    Route("GET", "/api/markets", "markets", "read", "Markets in the catalog with each outcome's top of book"),
    Route("GET", "/api/books", "books", "read", "Every book: top of book, age, health"),
    Route("GET", "/api/pnl", "pnl", "read", "PnL over time: [time_ns, net, realized, unrealized, fees, exposure] in dollars"),
    Route("GET", "/api/strategies", "strategies", "read", "Strategies, enabled or not, with their current params"),
    Route("GET", "/api/drops", "drops", "read", "Recent dropped inputs (malformed frames, unknown messages, ...)"),
    Route("POST", "/api/control/halt", "halt", "write", "Halt: no new orders (open orders stay)", ControlBody, "control"),
    Route("POST", "/api/control/resume", "resume", "write", "Resume active trading", ControlBody, "control"),
    Route("POST", "/api/control/reduce", "reduce", "write", "Reduce: only orders that shrink positions pass", ControlBody, "control"),
    Route("POST", "/api/control/flatten", "flatten", "write", "Cancel every order, then sell every position (slippage-capped)", FlattenBody, "control"),
    Route("POST", "/api/control/cancel-all", "cancel_all", "write", "Cancel every open order (or one strategy's)", CancelAllBody, "control"),
    Route("POST", "/api/strategies/{name}/enable", "enable", "write", "Enable a strategy", ControlBody, "control"),
    Route("POST", "/api/strategies/{name}/disable", "disable", "write", "Disable a strategy (its open orders are cancelled)", ControlBody, "control"),
    Route("POST", "/api/strategies/{name}/params", "set_params", "write", "Change a strategy's params at run time (validated like the config)", ParamsBody, "control"),
    Route("GET", "/api/chain", "chain", "read", "On-chain actions (merge, split, redeem, convert) on their way, and recent steps"),
    Route("POST", "/api/chain/{action}", "chain_action", "write", "Ask for an on-chain merge, split, redeem or convert (checked like a strategy's request; the portfolio moves when the chain confirms it)", ChainBody, "control"),
    Route("GET", "/critical", "critical", "open", "200 when all is well, 503 with the reasons otherwise (for external monitors)", tag="monitoring"),
    Route("GET", "/metrics", "metrics", "read", "Prometheus exposition (text format 0.0.4)", tag="monitoring", content="text/plain"),
    Route("GET", "/openapi.json", "openapi", "open", "This description", tag="meta"),
    Route("GET", "/ws", "ws", "read", "WebSocket: a snapshot, then an update whenever something changed (at most every push_interval_s)", tag="read"),
)  # fmt: skip


class ApiServer:
    """The API of one daemon. ``control(event)`` sends a control input through the kernel's
    door and returns once the kernel has processed it."""

    def __init__(self, cfg: ApiConfig, monitor: Monitor, *, token: str,
                 control: Callable[[ControlEvent], Awaitable[None]], executor: Any = None,
                 metrics: Callable[[], str] | None = None, token_from: str = "") -> None:  # fmt: skip
        self.cfg = cfg
        self.monitor = monitor
        self.kernel = monitor.kernel
        self.executor = executor
        self._token = token.encode()
        self._control = control
        self._metrics = metrics
        self.token_from = token_from  # "secret" or the token file's path (never the token)
        self.loopback = is_loopback(cfg.host)
        self.reads_need_token = not self.loopback
        self.port = cfg.port
        self.requests = 0
        self.refused = 0
        self.websockets: set[web.WebSocketResponse] = set()
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        for r in ROUTES:
            self.app.router.add_route(r.method, r.path, getattr(self, "h_" + r.handler))
        self._auth = {(r.method, r.path): r.auth for r in ROUTES}

    # ------------------------------------------------------------------------ plumbing

    def _authorized(self, request: web.Request) -> bool:
        got = request.headers.get("Authorization", "")
        tok = got[7:].strip() if got[:7].lower() == "bearer " else request.query.get("token", "") if request.path == "/ws" else ""
        return bool(tok) and hmac.compare_digest(tok.encode(), self._token)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        self.requests += 1
        if self.loopback and not _loopback_host(request.host):
            # DNS rebinding: a page from another site, its name re-pointed at 127.0.0.1, would
            # otherwise read the open routes; a loopback API answers only to loopback names
            self.refused += 1
            return _json({"error": "forbidden: this API answers only to a loopback Host (127.0.0.1, localhost, [::1])"}, 403)
        info = request.match_info.route.resource
        canonical = info.canonical if info is not None else request.path
        auth = self._auth.get((request.method, canonical), "open")
        if auth == "write" or (auth == "read" and self.reads_need_token):
            if not self._authorized(request):
                self.refused += 1
                logger.warning("api: {} {} from {} refused: missing or wrong bearer token", request.method,
                               request.path, request.remote)  # fmt: skip
                return _json({"error": "unauthorized: this endpoint needs Authorization: Bearer <api token>"}, 401,
                             {"WWW-Authenticate": 'Bearer realm="polybot"'})  # fmt: skip
        try:
            return await handler(request)
        except ApiError as exc:
            body: dict[str, Any] = {"error": exc.message}
            if exc.field:
                body["field"] = exc.field
            return _json(body, exc.status)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - a view bug answers 500 and is logged; the daemon goes on
            logger.exception("api: {} {} failed", request.method, request.path)
            return _json({"error": "internal error (see the daemon's log)"}, 500)

    async def start(self) -> int:
        """Listen (raises OSError when the address is taken); returns the port."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port, reuse_address=True)
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        server = getattr(site, "_server", None)
        socks = getattr(server, "sockets", None) or []
        if socks:
            self.port = socks[0].getsockname()[1]
        logger.info("api: listening on http://{}:{}/ (dashboard), reads {}", self.cfg.host, self.port,
                    "need the token" if self.reads_need_token else "open (loopback)")  # fmt: skip
        return self.port

    async def run(self) -> None:
        """Serve (after :meth:`start`) until cancelled, then close every connection."""
        try:
            await self._push_loop()
        finally:
            with anyio.CancelScope(shield=True):
                for ws in list(self.websockets):
                    await ws.close()
                await self._runner.cleanup()

    async def _push_loop(self) -> None:
        """Sample the PnL on the wall clock and wake the WebSocket senders."""
        while True:
            self.monitor.sample()
            await anyio.sleep(self.cfg.pnl_sample_s)

    async def _body(self, request: web.Request, typ: type) -> Any:
        raw = await request.read()
        if not raw.strip():
            raw = b"{}"
        try:
            return msgspec.json.decode(raw, type=typ)
        except msgspec.ValidationError as exc:
            raise validation_error(exc) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"body: malformed JSON: {exc}", "body") from None

    def _strategy(self, request: web.Request) -> Any:
        name = request.match_info["name"]
        s = self.kernel.strategies.get(name)
        if s is None:
            raise ApiError(404, f"no strategy named {name!r} (see GET /api/strategies)", "name")
        return s

    async def _send(self, ev: ControlEvent) -> web.Response:
        try:
            with anyio.fail_after(10):
                await self._control(ev)
        except TimeoutError:
            raise ApiError(504, "the kernel did not confirm the command within 10 s (it is queued)") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ApiError(503, "the daemon is shutting down") from None
        k = self.kernel
        return _json({"ok": True, "command": msgspec.to_builtins(ev), "trading_state": k.trading_state,
                      "open_orders": len(k.orders.open_orders())})  # fmt: skip

    # ------------------------------------------------------------------------ reads

    async def h_dashboard(self, request: web.Request) -> web.Response:
        page = resources.files("polybot.api").joinpath("dashboard.html").read_bytes()
        return web.Response(body=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    def status_view(self) -> dict[str, Any]:
        st = self.monitor.status(self.executor, {"token_from": self.token_from, "reads_need_token": self.reads_need_token})
        st["critical"] = self.critical_reasons()
        return st

    async def h_status(self, request: web.Request) -> web.Response:
        return _json(self.status_view())

    async def h_positions(self, request: web.Request) -> web.Response:
        return _json(self.monitor.positions())

    async def h_orders(self, request: web.Request) -> web.Response:
        return _json({"orders": self.monitor.open_orders()})

    async def h_order_steps(self, request: web.Request) -> web.Response:
        return _json({"steps": _tail(self.monitor.order_steps, _limit(request))})

    async def h_fills(self, request: web.Request) -> web.Response:
        return _json({"fills": _tail(self.monitor.fills, _limit(request))})

    async def h_rejections(self, request: web.Request) -> web.Response:
        m = self.monitor
        by = [{"validator": v, "strategy": s, "count": n} for (v, s), n in sorted(m.risk_rejects.items())]
        return _json({"risk": _tail(m.rejections, _limit(request)), "risk_by_validator": by,
                      "executor_by_reason": dict(sorted(m.exec_rejects.items()))})  # fmt: skip

    async def h_markets(self, request: web.Request) -> web.Response:
        k = self.kernel
        out = []
        for info in sorted(k.catalog._markets.values(), key=lambda i: i.market):
            outcomes = []
            for i, aid in enumerate(info.asset_ids):
                b = k.books.get(aid)
                outcomes.append({"asset_id": aid, "outcome": info.outcomes[i] if i < len(info.outcomes) else "",
                                 "best_bid": from_units(b.best_bid) if b is not None and b.best_bid else None,
                                 "best_ask": from_units(b.best_ask) if b is not None and b.best_ask else None,
                                 "healthy": bool(b is not None and b.healthy)})  # fmt: skip
            out.append({"market": info.market, "question": info.question, "slug": info.slug,
                        "tick_size": from_units(info.tick_size), "neg_risk": info.neg_risk, "active": info.active,
                        "closed": info.closed, "accepting_orders": info.accepting_orders,
                        "resolved": k.catalog.resolved.get(info.market, ""), "outcomes": outcomes})  # fmt: skip
        return _json({"markets": out})

    async def h_books(self, request: web.Request) -> web.Response:
        return _json({"books": self.monitor.book_rows(_limit(request, 500, 5000))})

    async def h_pnl(self, request: web.Request) -> web.Response:
        return _json({"fields": ["time_ns", "net", "realized", "unrealized", "fees", "exposure"],
                      "points": _pnl_points(self.monitor.pnl_series, _limit(request, 3600, 100_000))})  # fmt: skip

    async def h_strategies(self, request: web.Request) -> web.Response:
        return _json({"strategies": self.monitor.strategy_rows()})

    async def h_drops(self, request: web.Request) -> web.Response:
        k = self.kernel
        return _json({"drops": _tail(self.monitor.drops, _limit(request)), "by_reason": dict(sorted(k.stats.drop_reasons.items()))})

    def critical_reasons(self) -> list[str]:
        cfg = self.cfg
        m = self.monitor
        out = []
        if self.kernel.trading_state == "halted":
            out.append("trading is halted")
        now = m.now()
        for f in m.feeds.values():
            # "stale" is not down: a quiet market or a sports feed between games says so, and
            # nothing reports the end of it; the books' health covers stale data
            if f.state in ("disconnected", "failed") and (now - f.since) / NS >= cfg.critical_feed_down_s:
                # no detail: /critical is open even off loopback (GET /api/status has it)
                out.append(f"feed {f.name} {f.state} for {(now - f.since) / NS:.0f} s")
        worst, which = m.worst_book_unhealthy_s()
        if which and worst >= cfg.critical_book_unhealthy_s:
            b = self.kernel.books.get(which)
            out.append(f"book {which} unhealthy for {worst:.0f} s ({b.unhealthy_reason if b is not None else ''})")
        return out

    async def h_critical(self, request: web.Request) -> web.Response:
        reasons = self.critical_reasons()
        return _json({"ok": not reasons, "reasons": reasons}, 503 if reasons else 200)

    async def h_metrics(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            raise ApiError(404, "metrics are not available in this daemon")
        return web.Response(body=self._metrics().encode(), headers={
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "X-Content-Type-Options": "nosniff"})  # fmt: skip

    async def h_openapi(self, request: web.Request) -> web.Response:
        return _json(openapi())

    # ------------------------------------------------------------------------ controls

    async def h_halt(self, request: web.Request) -> web.Response:
        b = await self._body(request, ControlBody)
        return await self._send(Halt(origin="api", reason=b.reason or "operator halt (api)"))

    async def h_resume(self, request: web.Request) -> web.Response:
        b = await self._body(request, ControlBody)
        return await self._send(Resume(origin="api", reason=b.reason or "operator resume (api)"))

    async def h_reduce(self, request: web.Request) -> web.Response:
        b = await self._body(request, ControlBody)
        return await self._send(Reduce(origin="api", reason=b.reason or "operator reduce (api)"))

    async def h_flatten(self, request: web.Request) -> web.Response:
        b = await self._body(request, FlattenBody)
        slip = 0
        if b.max_slippage is not None:
            try:
                slip = to_units(b.max_slippage)
            except ValueError:
                slip = -1
            if not 0 < slip < 1_000_000:
                raise ApiError(422, "max_slippage: must be a price between 0 and 1, e.g. \"0.02\"", "max_slippage")
        return await self._send(Flatten(origin="api", reason=b.reason or "operator flatten (api)", max_slippage=slip))

    async def h_cancel_all(self, request: web.Request) -> web.Response:
        b = await self._body(request, CancelAllBody)
        if b.strategy and b.strategy not in self.kernel.strategies:
            raise ApiError(422, f"strategy: no strategy named {b.strategy!r}", "strategy")
        return await self._send(CancelAll(origin="api", reason=b.reason or "operator cancel-all (api)", strategy=b.strategy))

    async def h_enable(self, request: web.Request) -> web.Response:
        s = self._strategy(request)
        b = await self._body(request, ControlBody)
        return await self._send(EnableStrategy(origin="api", strategy=s.id, enabled=True, reason=b.reason))

    async def h_disable(self, request: web.Request) -> web.Response:
        s = self._strategy(request)
        b = await self._body(request, ControlBody)
        return await self._send(EnableStrategy(origin="api", strategy=s.id, enabled=False, reason=b.reason))

    async def h_set_params(self, request: web.Request) -> web.Response:
        s = self._strategy(request)
        b = await self._body(request, ParamsBody)
        if not b.params:
            raise ApiError(422, "params: name at least one param to change", "params")

        try:  # validated here for a clear answer, and again by the kernel when it applies them
            convert_params(type(s.params), params_table(s.params) | b.params)
        except msgspec.ValidationError as exc:
            raise validation_error(exc, "params") from None
        return await self._send(SetParams(origin="api", strategy=s.id, params=b.params, reason=b.reason))

    async def h_chain(self, request: web.Request) -> web.Response:
        return _json(self.monitor.chain_view())

    async def h_chain_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in CHAIN_ACTIONS:
            raise ApiError(404, f"no on-chain action {action!r} (one of {', '.join(CHAIN_ACTIONS)})")
        b = await self._body(request, ChainBody)
        amount = 0
        if action != "redeem":
            try:
                amount = to_units(b.amount)
            except (ValueError, ArithmeticError):
                amount = -1
            if amount <= 0:
                raise ApiError(422, "amount: a positive number of shares, e.g. \"25\"", "amount")
        if action == "convert" and not b.asset_ids:
            raise ApiError(422, "asset_ids: name the NO tokens to convert", "asset_ids")
        if action != "convert" and not b.market:
            raise ApiError(422, "market: the market's condition id", "market")
        if b.strategy and b.strategy not in self.kernel.strategies:
            raise ApiError(422, f"strategy: no strategy named {b.strategy!r}", "strategy")
        k = self.kernel
        seq = k._act_seq
        resp = await self._send(ChainAction(origin="api", reason=b.reason, action=action, market=b.market,  # type: ignore[arg-type]
                                            amount=amount, strategy=b.strategy, asset_ids=tuple(b.asset_ids)))  # fmt: skip
        if k._act_seq > seq:  # the kernel's answer: sent (pending), confirmed, or refused with the reason
            aid = f"{k.client_id_prefix}-a{k._act_seq}"
            steps = [r for r in self.monitor.chain if r["action_id"] == aid]
            body = msgspec.json.decode(resp.body)
            body["action_id"] = aid
            body["steps"] = steps
            refused = any(r["step"] == "position_action_failed" for r in steps) and aid not in k.actions
            return _json(body, status=409 if refused and len(steps) == 1 else 200)
        return resp

    # ------------------------------------------------------------------------ push

    def view_message(self, kind: str = "snapshot", pnl: Any = None) -> dict[str, Any]:
        """What /ws sends: everything the dashboard shows; ``pnl`` the points to send (default:
        the whole series, as a snapshot has it)."""
        m = self.monitor
        return {"type": kind, "status": self.status_view(), "positions": m.positions(),
                "orders": m.open_orders(), "books": m.book_rows(200), "fills": _tail(m.fills, 100),
                "steps": _tail(m.order_steps, 100), "rejections": _tail(m.rejections, 100),
                "pnl": _pnl_points(m.pnl_series if pnl is None else pnl, 3600)}  # fmt: skip

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        # a browser opens a WebSocket from any page (no same-origin policy): without the token,
        # only the dashboard's own origin (or a client that sends no Origin) may read
        origin = request.headers.get("Origin")
        if origin is not None and origin.partition("://")[2].rstrip("/") != request.host and not self._authorized(request):
            self.refused += 1
            logger.warning("api: {} {} from {} refused: cross-origin WebSocket without the token", request.method,
                           request.path, request.remote)  # fmt: skip
            return _json({"error": "forbidden: a cross-origin WebSocket needs ?token=<api token>"}, 403)
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self.websockets.add(ws)
        m, k = self.monitor, self.kernel
        try:
            await ws.send_str(_ENC.encode(self.view_message()).decode())
            seen = (m.version, k.stats.inputs, k.book_changes)
            last_pnl = m.pnl_series[-1][0] if m.pnl_series else 0
            while not ws.closed:
                msg = await _receive(ws, self.cfg.push_interval_s)
                if msg is not None and msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                now = (m.version, k.stats.inputs, k.book_changes)
                if now == seen:
                    continue
                seen = now
                new_pnl = [p for p in m.pnl_series if p[0] > last_pnl]
                if new_pnl:
                    last_pnl = new_pnl[-1][0]
                await ws.send_str(_ENC.encode(self.view_message("update", new_pnl)).decode())
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away
        finally:
            self.websockets.discard(ws)
        return ws


async def _receive(ws: web.WebSocketResponse, timeout: float) -> Any:
    try:
        return await ws.receive(timeout=timeout)
    except TimeoutError:
        return None


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENC.encode(obj), status=status, content_type=JSON, headers=headers)


def _limit(request: web.Request, default: int = 100, cap: int = 10_000) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ApiError(400, f"limit: expected an integer, got {raw[:20]!r}", "limit") from None
    if not 1 <= n <= cap:
        raise ApiError(400, f"limit: must be 1-{cap}", "limit")
    return n


def _tail(rows: Any, n: int) -> list[Any]:
    rows = list(rows)
    return rows[-n:]


def _pnl_points(series: Any, n: int) -> list[list[Any]]:
    pts = list(series)[-n:]
    return [[t, *(int(v) / 1_000_000 for v in rest)] for t, *rest in pts]


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of :data:`ROUTES` (request bodies from the msgspec structs)."""
    bodies = [r.body for r in ROUTES if r.body is not None]
    schemas, components = msgspec.json.schema_components(list(dict.fromkeys(bodies)), ref_template="#/components/schemas/{name}")
    refs = dict(zip(dict.fromkeys(bodies), schemas))
    err = {"$ref": "#/components/schemas/Error"}
    components["Error"] = {"type": "object", "required": ["error"],
                           "properties": {"error": {"type": "string"}, "field": {"type": "string", "description": "the offending field"}}}  # fmt: skip
    paths: dict[str, Any] = {}
    for r in ROUTES:
        op: dict[str, Any] = {"summary": r.summary, "operationId": r.handler, "tags": [r.tag],
                              "responses": {"200": {"description": "OK", "content": {r.content: {}}}}}  # fmt: skip
        if "{name}" in r.path:
            op["parameters"] = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                                 "description": "strategy instance name"}]  # fmt: skip
            op["responses"]["404"] = {"description": "no such strategy", "content": {JSON: {"schema": err}}}
        if r.handler in ("fills", "order_steps", "rejections", "books", "pnl", "drops"):
            op["parameters"] = [{"name": "limit", "in": "query", "required": False,
                                 "schema": {"type": "integer", "minimum": 1}}]  # fmt: skip
        if r.body is not None:
            op["requestBody"] = {"required": False, "content": {JSON: {"schema": refs[r.body]}}}
            op["responses"]["400"] = {"description": "malformed JSON", "content": {JSON: {"schema": err}}}
            op["responses"]["422"] = {"description": "a field is invalid (named in `field`)", "content": {JSON: {"schema": err}}}
        if r.auth == "write":
            op["security"] = [{"bearer": []}]
            op["responses"]["401"] = {"description": "missing or wrong bearer token", "content": {JSON: {"schema": err}}}
        elif r.auth == "read":
            op["security"] = [{}, {"bearer": []}]
        if r.handler == "critical":
            op["responses"]["503"] = {"description": "something needs attention: `reasons`", "content": {JSON: {}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "polybot operator API", "version": "1",
                 "description": "Status and control of a running polybot daemon. Controls go through the kernel's "
                                "one door as journaled control inputs. Reads are open on a loopback address; "
                                "on any other address every route but /critical needs the bearer token."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }  # fmt: skip
