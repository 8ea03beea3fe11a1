"""The CLOB executor end to end on loopback: the daemon (feed, kernel, journal, executor) against
the simulator's CLOB REST and user channel, which verify every signature and HMAC. Each scenario
ends with no order placed twice and the kernel's position equal to the venue's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

pytest.importorskip("py_clob_client_v2")

from live_rig import ADDRESS, PK, live_rig  # noqa: E402
from polybot.events import OrderPlan, OrderIntent  # noqa: E402
from polybot.journal import JournalReader  # noqa: E402

pytestmark = pytest.mark.anyio
TEN = 10_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def no_duplicates(rig: Any) -> None:
    """Every order the venue accepted was posted successfully once (a re-post of the same hash
    after an unknown outcome is refused by the venue, never placed)."""
    hashes = rig.placed()
    assert len(hashes) == len(set(hashes))
    ours = {o.venue_order_id for o in rig.kernel.orders.all() if o.venue_order_id}
    assert set(hashes) <= ours | set(rig.executor._by_hash)


def same_position(rig: Any, asset: str) -> None:
    assert rig.kernel.portfolio.size(asset) == rig.venue_position(asset), asset


async def test_submit_fill_rest_partial_cancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, ask = rig.top(yes)
        # marketable: fills at once against the book (taker)
        a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
        await rig.until(lambda: rig.order(a).filled == TEN, what="taker fill")
        assert rig.order(a).venue_order_id.startswith("0x") and rig.order(a).fees > 0  # the market's taker fee
        # resting: accepted (PLACEMENT), then hit in part by an outside taker
        b = rig.submit(yes, "BUY", bid - 20_000, TEN)
        await rig.until(lambda: rig.order(b).state == "accepted", what="resting order accepted")
        rig.sim.exchange.cross(yes, "SELL", "4", "0.01")
        await rig.until(lambda: rig.order(b).filled == 4_000_000, what="partial maker fill")
        assert rig.order(b).state == "partially_filled"
        # the fill settles: MATCHED -> MINED -> CONFIRMED, one fill
        key = next(k for k in rig.kernel.fills if k.startswith(b + "/"))
        await rig.until(lambda: rig.kernel.fills[key].status == "CONFIRMED", what="confirmed")
        assert rig.order(b).filled == 4_000_000
        # cancel the rest
        assert rig.kernel.cancel(None, b)
        await rig.until(lambda: rig.order(b).state == "cancelled", what="cancelled")
        await anyio.sleep(0.2)
        same_position(rig, yes)
        assert rig.kernel.portfolio.size(yes) == 14_000_000
        no_duplicates(rig)
        assert rig.sim.exchange.control("auth_failures", {})["auth_failures"] == 0


async def test_two_of_our_orders_in_one_trade_both_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        b = rig.submit(yes, "BUY", bid - 20_000, TEN)
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "accepted", what="both resting")
        r = rig.sim.exchange.cross(yes, "SELL", "15", "0.01")
        await rig.until(lambda: rig.order(a).filled + rig.order(b).filled == 15_000_000, what="both filled")
        ids = {k.split("/")[1] for k in rig.kernel.fills if k.split("/")[0] in (a, b)}
        assert len(ids) == 1, "one trade, two fills of ours"
        assert rig.order(a).filled == TEN and rig.order(b).filled == 5_000_000
        await anyio.sleep(0.3)  # MINED / CONFIRMED repeat the trade: nothing counts twice
        assert rig.kernel.portfolio.size(yes) == 15_000_000 == rig.venue_position(yes)
        assert r


async def test_timeout_then_filled_is_resolved_by_hash_not_resent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, executor={"request_timeout_s": 0.5}) as rig:
        yes = rig.market["yes"]
        _, ask = rig.top(yes)
        rig.sim.exchange.timeout_next_submit(2000)  # placed and matched, the answer held past our timeout
        a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
        await rig.until(lambda: rig.order(a).filled == TEN, what="fill of the timed-out order")
        await anyio.sleep(2.5)  # the held answer arrives (or not) long after our timeout
        assert rig.kernel.stats.illegal_transitions == 0
        assert rig.posts()[rig.order(a).venue_order_id] == 1  # found by its hash, never re-sent
        same_position(rig, yes)
        no_duplicates(rig)


async def test_timeout_resolved_by_hash_over_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user channel: the unknown submit is looked up by its hash and its fills fetched."""
    async with live_rig(tmp_path, monkeypatch, executor={"request_timeout_s": 0.5, "ws_url": ""}) as rig:
        yes = rig.market["yes"]
        _, ask = rig.top(yes)
        rig.sim.exchange.timeout_next_submit(2000)
        a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
        await rig.until(lambda: rig.order(a).filled == TEN, what="fill found over REST")
        assert any(ev["type"] == "order_unknown" and ev["client_id"] == a for ev in _exec_inputs(rig))
        assert rig.posts()[rig.order(a).venue_order_id] == 1 and rig.executor.resends == 0
        same_position(rig, yes)
        no_duplicates(rig)


async def test_a_5xx_submit_not_processed_is_sent_again_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        rig.sim.exchange.error_next(503, 1, route="POST /order")  # not a heartbeat in between
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="accepted after the re-send")
        h = rig.order(a).venue_order_id
        assert rig.posts()[h] == 1 and rig.placed().count(h) == 1
        assert rig.executor.resends == 1
        no_duplicates(rig)


async def test_a_failed_trade_reverses_the_fill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        _, ask = rig.top(yes)
        rig.sim.exchange.fail_next_trade()
        a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
        await rig.until(lambda: any(k.startswith(a + "/") and r.status == "FAILED" for k, r in rig.kernel.fills.items()),
                        what="reversal")  # fmt: skip
        assert rig.kernel.portfolio.size(yes) == 0 == rig.venue_position(yes)
        assert rig.kernel.portfolio.cash == rig.kernel.portfolio.starting_cash


async def test_reconnect_reconciles_missed_fills_and_unknown_orders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, executor={"unknown_orders": "cancel"}) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        n = rig.executor.reconciles
        # the user channel drops; a fill happens while it is down
        rig.sim.exchange.drop_user()
        rig.sim.exchange.cross(yes, "SELL", "6", "0.01")
        # an order of ours the journal does not know (another process, same key)
        stray = await _post_stray(rig, yes, bid - 30_000)
        await rig.until(lambda: rig.executor.reconciles > n, what="reconciliation after the reconnect")
        await rig.until(lambda: rig.order(a).filled == 6_000_000, what="the missed fill")
        await rig.until(lambda: _venue(rig, stray)["status"].upper().startswith("CANCEL"), what="stray cancelled")
        await anyio.sleep(0.3)
        same_position(rig, yes)
        assert rig.kernel.stats.fills == 1


async def test_unknown_orders_can_be_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, executor={"unknown_orders": "adopt"}) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        n = rig.executor.reconciles
        stray = await _post_stray(rig, yes, bid - 30_000)
        rig.sim.exchange.drop_user()
        await rig.until(lambda: rig.executor.reconciles > n, what="reconciliation")
        await rig.until(lambda: any(o.venue_order_id == stray for o in rig.kernel.orders.open_orders()), what="adopted")
        o = next(o for o in rig.kernel.orders.open_orders() if o.venue_order_id == stray)
        assert o.strategy == "adopted" and o.intent.size == TEN and _venue(rig, stray)["status"] == "LIVE"


async def test_heartbeats_flow_and_a_basket_does_not_stall_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20-leg plan is signed and sent in the executor's task: the event loop stays responsive
    (a probe ticking every 2 ms never waits long) and heartbeats keep their rhythm."""
    async with live_rig(tmp_path, monkeypatch, executor={"heartbeat_s": 0.2}) as rig:
        legs = []
        for m in rig.sim.markets:
            for asset in (m["yes"], m["no"]):
                bid, _ = rig.top(asset)
                for i in range(5):
                    legs.append(OrderIntent(strategy="t", asset_id=asset, market=m["condition_id"], side="BUY",
                                            price=max(10_000, bid - (i + 2) * 10_000), size=TEN))  # fmt: skip
        assert len(legs) == 20
        lags: list[float] = []
        done = anyio.Event()

        async def probe() -> None:
            while not done.is_set():
                t = time.perf_counter()
                await anyio.sleep(0.002)
                lags.append(time.perf_counter() - t - 0.002)

        hb0 = rig.executor.heartbeats
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe)
            await anyio.sleep(0.05)
            d = rig.kernel.submit("t", OrderPlan(strategy="t", plan_id="basket", legs=tuple(legs)))
            assert d.action == "approve"
            await rig.until(lambda: all(rig.order(c).state == "accepted" for c in d.client_ids), what="basket accepted")
            await anyio.sleep(0.5)
            done.set()
        assert max(lags) < 0.05, f"the loop stalled {max(lags) * 1000:.1f} ms"
        assert rig.executor.heartbeats >= hb0 + 2
        hb = rig.sim.exchange.control("heartbeats", {})["heartbeats"]
        assert hb and all(v["kills"] == 0 for v in hb.values())
        assert sum(1 for x in rig.posts().values()) >= 20 and len(set(rig.placed())) >= 20


async def test_halt_cancels_everything_at_the_venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        rig.kernel.halt("test")
        await rig.until(lambda: rig.order(a).state == "cancelled", what="cancel-all on halt")
        assert all(not o["status"].upper() == "LIVE" for o in rig.venue_orders())


async def test_dry_run_signs_and_journals_and_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, executor={"dry_run": True}) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="accepted (dry run)")
        assert rig.order(a).venue_order_id.startswith("0x")
        assert rig.kernel.cancel(None, a)
        await rig.until(lambda: rig.order(a).state == "cancelled", what="cancelled (dry run)")
        assert rig.venue_orders() == [] and rig.posts() == {}
    signed = [ev for ev in _exec_inputs(rig) if ev["type"] == "order_signed"]
    assert signed and signed[0]["dry_run"] is True and signed[0]["maker_amount"] > 0


# ---------------------------------------------------------------------- helpers


def _journal(rig: Any) -> list[tuple[str, int, str, Any]]:
    j = rig.daemon.journal_path
    if rig.kernel.journal is not None and not rig.kernel.journal._f.closed:
        rig.kernel.journal.flush()
    return list(JournalReader(j))


def _engine(rig: Any) -> list[dict[str, Any]]:
    return [{"event": msgspec.json.decode(p) if isinstance(p, bytes) else p} for kind, _, src, p in _journal(rig)
            if src == "engine"]  # fmt: skip


def _exec_inputs(rig: Any) -> list[dict[str, Any]]:
    out = []
    for kind, _, src, p in _journal(rig):
        if src == "exec.clob":
            v = msgspec.json.decode(p) if isinstance(p, (bytes, str)) else p
            out.extend(v if isinstance(v, list) else [v])
    return out


def _venue(rig: Any, h: str) -> dict[str, Any]:
    return next(o for o in rig.venue_orders() if o["hash"] == h)


async def _post_stray(rig: Any, asset: str, price: int) -> str:
    """An order for our wallet that this daemon never sent (as another process would)."""
    import aiohttp

    from adapters.polymarket.signing import Credentials, OrderSigner, l2_headers

    ex = rig.executor
    s = OrderSigner(Credentials(PK), owner=ex.api.api_key)
    so = s.sign(OrderIntent(strategy="x", asset_id=asset, side="BUY", price=price, size=TEN, client_id="stray"),
                tick=10_000, neg_risk=False, v3=False, created_ns=time.time_ns())  # fmt: skip
    body = msgspec.json.encode(so.body)
    async with aiohttp.ClientSession() as http:
        async with http.post(rig.sim.rest_url + "/order", data=body,
                             headers=l2_headers(ex.api, ADDRESS, "POST", "/order", body)) as r:  # fmt: skip
            a = await r.json()
    assert a["success"], a
    return str(a["orderID"])


async def test_planted_secrets_never_reach_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key lives in a 0600 secrets file; the API credentials are derived (L1) on the first
    start and stored there. A session with fills and user-channel traffic (whose ``owner``
    fields carry the API key) runs with DEBUG logs captured; then every file the daemon wrote and
    every log line is searched for the key, the secret, the passphrase and the API key."""
    import os

    from loguru import logger

    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'private_key = "{PK}"\n')
    secrets.chmod(0o600)
    log = tmp_path / "all.log"
    sink = logger.add(str(log), level="DEBUG", backtrace=True, diagnose=True)
    monkeypatch.delenv("POLYBOT_PRIVATE_KEY", raising=False)
    try:
        async with live_rig(tmp_path, monkeypatch, secrets_file=str(secrets)) as rig:
            monkeypatch.delenv("POLYBOT_PRIVATE_KEY", raising=False)
            api = rig.executor.api
            yes = rig.market["yes"]
            bid, ask = rig.top(yes)
            a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
            b = rig.submit(yes, "BUY", bid - 10_000, TEN)
            await rig.until(lambda: rig.order(a).filled == TEN and rig.order(b).state == "accepted", what="traffic")
            rig.sim.exchange.cross(yes, "SELL", "3", "0.01")
            await rig.until(lambda: rig.order(b).filled == 3_000_000, what="maker fill")
            await anyio.sleep(0.3)
            repr(rig.executor), str(rig.executor.creds), repr(rig.executor.api)
    finally:
        logger.remove(sink)
    planted = {"private key": PK[2:], "api key": api.api_key, "secret": api.secret, "passphrase": api.passphrase}
    assert os.stat(secrets).st_mode & 0o777 == 0o600
    stored = secrets.read_text()
    assert api.api_key in stored and api.secret in stored  # derived once, reused next start
    outputs = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    outputs[log] = log.read_bytes()
    outputs[tmp_path / "summary"] = msgspec.json.encode(rig.result)
    assert any(b"polymarket.user" in v for v in outputs.values())  # the user channel was journaled
    for path, data in outputs.items():
        for what, value in planted.items():
            assert value.encode() not in data, f"{what} found in {path}"
            assert value.lower().encode() not in data.lower(), f"{what} found in {path}"
    # the journal's owner fields carry the stable alias instead
    from adapters.polymarket.live import _alias

    assert _alias(api.api_key).encode() in outputs[rig.daemon.journal_path]


async def test_a_429_is_sent_again_without_becoming_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        rig.sim.exchange.error_next(429, 2, route="POST /order")  # rate limited twice: not processed by the venue
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="accepted after the 429s")
        assert not any(ev["type"] == "order_unknown" for ev in _exec_inputs(rig))
        assert rig.posts()[rig.order(a).venue_order_id] == 1 and rig.executor.resends == 0


async def test_token_buckets_hold_the_documented_rates() -> None:
    from adapters.polymarket.live import LIMITS, TokenBucket

    assert LIMITS[("POST", "/order")] == [(3500, 10), (36000, 600)]
    assert LIMITS[("POST", "/orders")] == [(1000, 10), (15000, 600)]
    b = TokenBucket(5, 0.1)  # 5 requests per 100 ms
    t = time.monotonic()
    for _ in range(15):
        await b.take()
    elapsed = time.monotonic() - t
    assert 0.17 <= elapsed < 0.6 and b.waited > 0  # the burst of 5 at once, then 50 per second


async def test_a_resolved_market_is_cancelled_at_the_venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 10_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        rig.sim.resolve(rig.market["condition_id"], "no")  # the venue keeps it resting (the simulator does)
        await rig.until(lambda: rig.order(a).state == "cancelled", what="cancel-market after the resolution")
        assert _venue(rig, rig.order(a).venue_order_id)["status"].upper().startswith("CANCEL")


async def test_a_retrying_trade_is_reported_and_still_one_fill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        _, ask = rig.top(yes)
        rig.sim.exchange.retry_next_trade()
        a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
        await rig.until(lambda: any(k.startswith(a + "/") and r.status == "CONFIRMED" for k, r in rig.kernel.fills.items()),
                        what="confirmed after RETRYING")  # fmt: skip
        statuses = [ev["status"] for ev in _exec_inputs(rig) if ev["type"] == "fill_settlement" and ev["client_id"] == a]
        assert statuses == ["RETRYING", "MINED", "CONFIRMED"]
        assert rig.kernel.portfolio.size(yes) == TEN == rig.venue_position(yes)


async def test_a_half_open_user_channel_is_closed_and_reconnected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No PONG (nor anything else) within the timeout: the executor closes the socket, reconnects
    and reconciles, instead of waiting forever on a dead connection."""
    import adapters.polymarket.live as live

    monkeypatch.setattr(live, "PING_S", 0.1)
    monkeypatch.setattr(live, "PONG_TIMEOUT_S", 0.4)
    async with live_rig(tmp_path, monkeypatch) as rig:
        ex = rig.executor
        orig = ex._on_user_frame

        async def deaf(text: str) -> None:  # the PONGs never arrive: a half-open socket
            if text != "PONG":
                await orig(text)

        monkeypatch.setattr(ex, "_on_user_frame", deaf)
        n, r = rig.executor.user_connects, rig.executor.reconciles
        await rig.until(lambda: rig.executor.user_connects > n and rig.executor.reconciles > r, what="reconnect")


async def test_settlement_statuses_never_move_backwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        _, ask = rig.top(yes)
        a = rig.submit(yes, "BUY", ask, TEN, tif="FAK")
        await rig.until(lambda: any(k.startswith(a + "/") and r.status == "CONFIRMED" for k, r in rig.kernel.fills.items()),
                        what="confirmed")  # fmt: skip
        tid = next(k.split("/")[1] for k in rig.kernel.fills if k.startswith(a + "/"))
        stale = {"id": tid, "status": "MINED", "taker_order_id": rig.order(a).venue_order_id, "side": "BUY",
                 "price": "0.5", "size": "10", "asset_id": yes, "maker_orders": []}  # fmt: skip
        assert rig.executor._translate_trade(stale) == []  # a MINED after CONFIRMED (REST lagging): nothing
        assert rig.executor._fill_status[(tid, rig.order(a).venue_order_id)] == "CONFIRMED"


async def _signed_never_sent(rig: Any) -> str:
    """A bid below the touch that the executor signs and never puts on the wire (the crash
    between the two); ``del rig.executor._post`` brings the sending back. Its client id."""
    ex = rig.executor
    yes = rig.market["yes"]
    bid, _ = rig.top(yes)

    async def lost(chunk: Any) -> None:
        return None

    ex._post = lost
    a = rig.submit(yes, "BUY", bid - 10_000, TEN)
    await rig.until(lambda: ex.idle(), what="signed")
    return a


async def test_an_unanswered_order_cancelled_before_a_restart_is_closed_not_left_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """An order journaled, never answered, then cancelled (the venue: "not found") before the
    process died: after the restart the venue has no order with its hash, so it is closed
    (rejected), not left "cancel_pending" and counted open for ever (a shutdown then reported
    it open)."""
    async with live_rig(tmp_path, monkeypatch) as rig:
        ex = rig.executor
        a = await _signed_never_sent(rig)
        rig.kernel.cancel(None, a, "strategy")
        await rig.until(lambda: ex.idle() and rig.order(a).state == "cancel_pending", what="cancel sent")
        del ex._post
        ex._recovered.add(a)  # as _learn_hashes marks it after a restart
        await ex._resolve(rig.order(a), ex._signed[a], resend=False)
        await rig.until(lambda: rig.order(a).state == "rejected", what="closed after the lookup")
        assert rig.placed() == []


async def test_an_unanswered_order_from_before_a_restart_is_looked_up_never_resent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """An order journaled but never sent (the process died in between): after the restart its
    hash is recomputed and looked up; the venue has none, so it is refused, not sent again."""
    async with live_rig(tmp_path, monkeypatch) as rig:
        ex = rig.executor
        a = await _signed_never_sent(rig)
        assert rig.order(a).state == "submitted"
        del ex._post
        ex._recovered.add(a)  # as _learn_hashes marks it after a restart
        await ex._reconcile("restart")
        await rig.until(lambda: rig.order(a).state == "rejected", what="refused after the lookup")
        assert rig.posts().get(rig.order(a).venue_order_id or ex._signed[a].order_hash, 0) == 0
        assert rig.placed() == []
