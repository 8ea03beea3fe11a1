"""Review of the Polymarket US venue, second pass: a live session on the loopback simulator
(orders, maker and taker fills, partial and full, a cancel, a reconnect, the shutdown) replays
faithfully with no divergence and is rebuilt exactly by crash recovery (snapshot + journal
tail), on its own executor and behind a router beside the paper executor; plus decoder edge
cases of the venue's books."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.polymarket_us import asset_ids
from pmus_rig import SLUGS, Rig, pmus_config, set_keys, sim_server
from polybot.config import parse_config
from polybot.daemon import Daemon, send_control
from polybot.events import OrderIntent
from polybot.strategy import Strategy, StrategyParams
from polybot.units import SCALE, from_units

TEN = 10_000_000
TICK = 10_000
S0, S1 = SLUGS
L0, SH0 = asset_ids(S0)
L1, SH1 = asset_ids(S1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Scripted(Strategy):
    """Orders driven by journaled control inputs (``set_params``), so a faithful replay and a
    recovery see the same decisions as the live session: ``cmd`` = ``"buy|sell <asset> <price>
    <size> [tif]"`` or ``"cancel <k>"`` (the k-th order it placed), run when ``n`` changes."""

    name = "scripted"

    class Params(StrategyParams):
        cmd: str = ""
        n: int = 0

    def on_start(self) -> None:
        self.ids: list[str] = []

    def on_params(self, old: Any, new: Any) -> None:
        if new.n == old.n or not new.cmd:
            return
        op, *args = new.cmd.split()
        if op == "cancel":
            self.ctx.cancel(self.ids[int(args[0])])
            return
        asset, px, size = args[0], int(args[1]), int(args[2])
        info = self.ctx.catalog.for_asset(asset)
        d = self.ctx.submit(OrderIntent(strategy=self.id, asset_id=asset, market=info.market if info else "",
                                        side=op.upper(), price=px, size=size,  # type: ignore[arg-type]
                                        tif=args[3] if len(args) > 3 else "GTC"))  # type: ignore[arg-type]  # fmt: skip
        self.ids.append(d.client_ids[0])

    def snapshot(self) -> Any:
        return {"ids": list(self.ids)}

    def restore(self, state: Any) -> None:
        self.ids = list(state.get("ids", []))


SCRIPTED = {"s": {"class": "test_review_pmus2:Scripted"}}


class Session:
    def __init__(self, rig: Rig, cfg: Any) -> None:
        self.rig = rig
        self.cfg = cfg
        self.n = 0

    def strategy(self) -> Scripted:
        return self.rig.kernel.strategies["s"]  # type: ignore[return-value]

    async def do(self, cmd: str) -> str:
        """Send one command through the control inbox; the client id of the order it placed."""
        self.n += 1
        before = len(self.strategy().ids)
        send_control(self.cfg, {"type": "set_params", "strategy": "s", "params": {"cmd": cmd, "n": self.n}})
        if cmd.startswith("cancel"):
            cid = self.strategy().ids[int(cmd.split()[1])]
            await self.rig.until(lambda: self.rig.kernel.orders.get(cid).state in ("cancel_pending", "cancelled"),
                                 what=cmd)  # fmt: skip
            return cid
        await self.rig.until(lambda: len(self.strategy().ids) > before, what=cmd)
        return self.strategy().ids[-1]


@asynccontextmanager
async def daemon(sim: Any, data: Path, raw: dict[str, Any], more: tuple[str, ...] = ()) -> AsyncIterator[Session]:
    cfg = parse_config(raw, str(data.parent / "review-pmus2.toml"))
    d = Daemon(cfg)
    rig = Rig(sim, d)
    ex = d.executor
    us = ex.members["pmus"] if hasattr(ex, "members") else ex

    async def go() -> None:
        rig.result.update(await d.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        assets = [a for s in sim.slugs for a in asset_ids(s)] + list(more)
        await rig.until(lambda: all(a in d.kernel.books and d.kernel.books[a].healthy for a in assets),
                        what="healthy books")  # fmt: skip
        await rig.until(lambda: us.reconciles >= 1 and us.private_connects >= 1, what="private stream")
        try:
            yield Session(rig, cfg)
        finally:
            d.request_stop()


def _state(k: Any) -> dict[str, Any]:
    """The comparable state: orders, positions, cash, exposure, strategies (JSON round trip)."""
    st = json.loads(json.dumps(k.summary_state()))
    for v in st["strategies"].values():
        # run-time params (set_params) are not restored from a snapshot (the config's win):
        # a kernel-wide choice, outside this review; the orders they caused are compared
        v.pop("params", None)
    return st


def _recovered(raw: dict[str, Any], data: Path, snapshot: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A restart's rebuild (snapshot + journal tail; no snapshot = the whole journal), without
    running anything: the state, and what recovery did."""
    snap = data / "snapshot.json"
    aside = data / "snapshot.final"
    if not aside.exists():
        shutil.copy(snap, aside)
    try:
        if snapshot is None:
            snap.unlink()
        else:
            shutil.copy(snapshot, snap)
        d = Daemon(parse_config(raw, str(data.parent / "review-pmus2.toml")))
        d.prepare()
        try:
            return _state(d.kernel), d.recovered
        finally:
            d.kernel.journal.close()
            d.executor.close()
    finally:
        shutil.copy(aside, snap)


def _replayed(raw: dict[str, Any], data: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from polybot.replay import replay

    kernels: list[Any] = []
    s = replay(data / "journal.jsonl", parse_config(raw, "replay.toml"), mode="faithful", on_kernel=kernels.append)
    return _state(kernels[0]), s


def _fills(data: Path) -> list[tuple[str, str, int, int]]:
    out = []
    for line in (data / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        evs = [rec["event"]] if "event" in rec else rec["msg"] if rec["source"].startswith("exec.") else []
        for ev in evs:
            if isinstance(ev, dict) and ev.get("type") in ("order_filled", "order_partial"):
                out.append((ev["client_id"], ev["trade_id"], ev["price"], ev["size"]))
    return out


async def _pmus_session(s: Session, sim: Any, data: Path) -> Path:
    """Orders on the pmus venue: a resting bid filled in two maker parts (partial, then full),
    a taker buy, a resting short bid partly filled then cancelled, a reconnect with a fill
    while the streams are down, a resting order left for the shutdown to cancel. Returns a
    copy of a snapshot taken mid-session."""
    rig = s.rig
    bid, ask = rig.top(S0)
    a = await s.do(f"buy {L0} {bid - 2 * TICK} {TEN}")
    await rig.until(lambda: rig.order(a).state == "accepted", what="a resting")
    sim.trade(S0, from_units(bid - 2 * TICK), "4", aggressor_buys=False)
    await rig.until(lambda: rig.order(a).filled == 4 * SCALE, what="a partial")
    sim.trade(S0, from_units(bid - 2 * TICK), "6", aggressor_buys=False)
    await rig.until(lambda: rig.order(a).state == "filled", what="a full")
    b = await s.do(f"buy {L0} {ask} {2 * SCALE}")  # taker: crosses the offer
    await rig.until(lambda: rig.order(b).state == "filled", what="b taker")
    c = await s.do(f"buy {SH0} {SCALE - (ask + 2 * TICK)} {TEN}")  # a NO bid = a YES offer above the ask
    await rig.until(lambda: rig.order(c).state == "accepted", what="c resting")
    sim.trade(S0, from_units(ask + 2 * TICK), "3", aggressor_buys=True)
    await rig.until(lambda: rig.order(c).filled == 3 * SCALE, what="c partial")
    rig.daemon.snapshot()
    mid = data / "snapshot.mid"
    shutil.copy(data / "snapshot.json", mid)
    await s.do(f"cancel {s.strategy().ids.index(c)}")
    await rig.until(lambda: rig.order(c).state == "cancelled", what="c cancelled")
    bid1, _ = rig.top(S1)
    e = await s.do(f"buy {L1} {bid1 - 3 * TICK} {TEN}")
    await rig.until(lambda: rig.order(e).state == "accepted", what="e resting")
    us = rig.executor.members["pmus"] if hasattr(rig.executor, "members") else rig.executor
    connects = us.private_connects
    sim.drop_connections()
    sim.trade(S1, from_units(bid1 - 3 * TICK), "5", aggressor_buys=False)  # maybe while down
    await rig.until(lambda: us.private_connects > connects, what="private stream back")
    await rig.until(lambda: rig.order(e).filled == 5 * SCALE, what="e fill across the reconnect")
    assert rig.net(S0) == sim.position(S0) and rig.net(S1) == sim.position(S1)
    return mid


async def _check(raw: dict[str, Any], data: Path, rig: Rig, mid: Path) -> None:
    end = _state(rig.kernel)
    assert rig.result["open_orders"] == 0  # on_shutdown = cancel: the resting order went
    assert end["portfolio"]["positions"], end
    # faithful replay: no divergence, the same fills, the same state
    replayed, s = _replayed(raw, data)
    assert s["divergences"] == 0, s["divergence_examples"]
    assert s["fills"] == rig.result["fills"] == len(_fills(data)) >= 5
    assert replayed == end
    # recovery: from the mid-session snapshot + the tail, the final snapshot, the whole journal
    for snap in (mid, data / "snapshot.final", None):
        st, how = _recovered(raw, data, snap)
        assert st == end, f"recovery from {snap}: {how}"
        if snap == mid:
            assert how["snapshot"] and how["tail_inputs"] > 10


@pytest.mark.anyio
async def test_a_pmus_live_session_replays_faithfully_and_recovers_exactly(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    set_keys(monkeypatch)
    data = tmp_path / "d"
    async with sim_server() as sim:
        raw = pmus_config(sim, data, engine={"snapshot_every": 10_000})
        raw["strategies"] = SCRIPTED
        async with daemon(sim, data, raw) as s:
            mid = await _pmus_session(s, sim, data)
        await _check(raw, data, s.rig, mid)


async def _clob(s: Session, yes: str) -> tuple[str, str]:
    """On the default venue (the CLOB simulator's book, the paper executor): a taker buy that
    fills, and a resting bid left open for the shutdown."""
    rig = s.rig
    b = rig.kernel.books[yes]
    t = await s.do(f"buy {yes} {b.best_ask} {5 * SCALE}")
    await rig.until(lambda: rig.order(t).state == "filled", what="clob taker")
    r = await s.do(f"buy {yes} {b.best_bid - 3 * TICK} {5 * SCALE}")
    await rig.until(lambda: rig.order(r).state == "accepted", what="clob resting")
    return t, r


@pytest.mark.anyio
async def test_a_router_session_on_two_venues_replays_faithfully_and_recovers_member_by_member(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from adapters.polymarket.sim import SimConfig, SimServer

    set_keys(monkeypatch)
    data = tmp_path / "d"
    async with sim_server() as sim, SimServer(SimConfig(autostart=False, n_markets=1)) as clob:
        m = clob.markets[0]
        raw = pmus_config(sim, data, engine={"snapshot_every": 10_000})
        us = raw["executor"]
        raw["executor"] = {"kind": "paper", "params": {"cash": "1000", "latency_ms": 20},
                           "venues": {"pmus": {"kind": us["kind"], "params": us["params"]}}}  # fmt: skip
        raw["feeds"].append({"kind": "polymarket", "name": "clob",
                             "params": {"ws_url": clob.ws_url, "rest_url": clob.rest_url, "gamma_url": clob.gamma_url,
                                        "markets": [m["slug"]]}})  # fmt: skip
        raw["strategies"] = SCRIPTED
        async with daemon(sim, data, raw, more=(m["yes"], m["no"])) as s:
            assert type(s.rig.executor).__name__ == "VenueRouter"
            t, r = await _clob(s, m["yes"])
            mid = await _pmus_session(s, sim, data)
            paper = s.rig.executor.members[""]
        assert s.rig.order(r).state == "cancelled"  # the shutdown cancelled on both venues
        assert s.rig.kernel.portfolio.size(m["yes"]) == 5 * SCALE
        st = s.rig.kernel.to_state()["executor"]
        assert st["name"] == "router" and st["state"][""]["name"] == "paper" and st["state"]["pmus"]["name"] == "pmus"
        assert st["state"][""]["state"] == paper.to_state()
        await _check(raw, data, s.rig, mid)
        # `polybot state` (read only, the journal left as it is) on the router's data dir
        import argparse
        import contextlib
        import io

        from polybot import cli

        monkeypatch.setattr(cli, "_load_cfg", lambda _p: parse_config(raw, str(tmp_path / "review-pmus2.toml")))
        size = (data / "journal.jsonl").stat().st_size
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.cmd_state(argparse.Namespace(config="x.toml", log_level=None)) == 0
        shown = json.loads(out.getvalue().strip().splitlines()[-1])
        for v in shown["strategies"].values():
            v.pop("params", None)
        assert shown == _state(s.rig.kernel) and (data / "journal.jsonl").stat().st_size == size


# ---------------------------------------------------------------------- feed: lite mode


@pytest.mark.anyio
async def test_a_lite_feed_never_leaves_a_stale_book_looking_healthy() -> None:
    """``lite`` streams best prices only (BestBidAsk), never books: a REST book fetched at the
    start would stay in the kernel, healthy, while the market moves, and strategies and the
    data_health validator would trade on it. Every book a strategy can read must be current
    (or unhealthy)."""
    from polybot.events import BestBidAsk, FeedConnected
    from test_pmus_market_data import SLUGS as MD_SLUGS, rig as md_rig, until as md_until

    async with md_rig(feed_kw={"lite": True}) as r:
        bbo: dict[str, BestBidAsk] = {}
        r.kernel.bus.subscribe(BestBidAsk, lambda e: bbo.__setitem__(e.asset_id, e))
        await md_until(lambda: r.ev(FeedConnected))
        r.sim.step(200)

        def tops() -> dict[str, tuple[int, int]]:
            out = {}
            for slug in MD_SLUGS:
                bids, offers = r.sim.book(slug)
                lo, sh = asset_ids(slug)
                out[lo] = (bids[0][0], offers[0][0])
                out[sh] = (SCALE - offers[0][0], SCALE - bids[0][0])
            return out

        await md_until(lambda: all(a in bbo and (bbo[a].best_bid, bbo[a].best_ask) == t for a, t in tops().items()))
        assert tops()[asset_ids(MD_SLUGS[0])[0]] != (0, 0)
        for aid, top in tops().items():
            b = r.kernel.books.get(aid)
            assert b is None or not b.healthy or (b.best_bid, b.best_ask) == top, (aid, (b.best_bid, b.best_ask), top)


# ---------------------------------------------------------------------- router: what-if replay


def test_what_if_replay_of_a_router_keeps_the_configured_paper_executor(tmp_path: Path) -> None:
    """``[executor] kind = "paper"`` (its cash and latency) beside a live venue: a what-if
    replay stands one paper executor in for the whole router, and that must be the configured
    one, not a default paper executor (other cash, no latency: other fills, other PnL)."""
    from polybot.execution.paper import PaperExecutor
    from polybot.replay import replay

    journal = tmp_path / "j.jsonl"
    journal.write_text('{"ts": 1, "source": "control", "msg": {"type": "resume"}}\n')
    cfg = parse_config({"executor": {"kind": "paper", "params": {"cash": "200", "latency_ms": 30},
                                     "venues": {"pmus": {"kind": "polymarket-us"}}}}, "t.toml")  # fmt: skip
    kernels: list[Any] = []
    replay(journal, cfg, mode="what-if", on_kernel=kernels.append)
    ex = kernels[0].executor
    assert isinstance(ex, PaperExecutor)
    assert ex.start_cash == 200 * SCALE and ex.latency_ns == 30_000_000
    assert kernels[0].portfolio.starting_cash == 200 * SCALE
