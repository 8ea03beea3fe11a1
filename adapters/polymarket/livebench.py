"""Live-path figures for ``polybot bench`` (needs the ``live`` extra): signing + serialising one
order, and intent -> request on the wire against the local simulator on loopback.

* ``sign_p50_us``: :meth:`OrderSigner.sign` (amounts, EIP-712 hash, secp256k1 signature) plus the
  JSON body's bytes, per order.
* ``wire_p50_us``: from ``kernel.submit()`` (risk chain, journal off) to the simulator's handler
  holding the request (after its HMAC check): the executor's queue, task switch, signing,
  ``OrderSigned`` report, L2 headers, aiohttp, loopback TCP. One order at a time.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import msgspec

from polybot.events import ENCODER, MarketInfo, OrderIntent
from polybot.kernel import Kernel

PK = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # Hardhat #0, public


def _pct(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000


def sign_figures(n: int) -> dict[str, float]:
    from .signing import Credentials, OrderSigner

    s = OrderSigner(Credentials(PK), owner="bench")
    it = OrderIntent(strategy="b", asset_id="25070934348813416902477876984955073880416401960631253331845590271167412497744",
                     side="BUY", price=450_000, size=10_000_000, client_id="pb-0")  # fmt: skip
    times: list[int] = []
    for i in range(n):
        it2 = msgspec.structs.replace(it, client_id=f"pb-{i}")
        t = time.perf_counter_ns()
        so = s.sign(it2, tick=10_000, neg_risk=False, v3=False, created_ns=1_790_000_000_000_000_000 + i)
        msgspec.json.encode(so.body)
        times.append(time.perf_counter_ns() - t)
    return {"live_sign_p50_us": statistics.median(times) / 1000, "live_sign_p99_us": _pct(times, 0.99)}


async def _wire(n: int) -> dict[str, float]:
    from polybot.clock import LiveClock
    from polybot.kernel import InboundRecord

    from .live import ClobExecutor
    from .sim import SimConfig, SimServer
    from .signing import Credentials, OrderSigner

    sim = SimServer(SimConfig(autostart=False, n_markets=1))
    arrivals: list[int] = []
    inner = sim.exchange._h_post_order

    async def stamped(request: Any, k: Any, body: bytes) -> Any:
        arrivals.append(time.perf_counter_ns())
        return await inner(request, k, body)

    sim.exchange._h_post_order = stamped  # type: ignore[method-assign]
    async with sim:
        m = sim.markets[0]
        url = sim.rest_url
        ex = ClobExecutor(rest_url=url, ws_url="", data_url=url, heartbeat_s=0, request_timeout_s=5.0)
        ex.creds = Credentials(PK)
        ex.signer = OrderSigner(ex.creds)
        k = Kernel(executor=ex)
        k.process(1, "events", ENCODER.encode(MarketInfo(ts=1, market=m["condition_id"], asset_ids=(m["yes"], m["no"]))))
        send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
        starts: list[int] = []
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for rec in recv:
                    k.process(rec.ts, rec.source, rec.msg)

            tg.start_soon(consume)
            tg.start_soon(ex.run, send, LiveClock())
            with anyio.fail_after(30):
                while ex.reconciles < 1:
                    await anyio.sleep(0.01)
                for i in range(n):
                    k.clock._now = time.time_ns()
                    t = time.perf_counter_ns()
                    d = k.submit("b", OrderIntent(strategy="b", asset_id=m["yes"], market=m["condition_id"], side="BUY",
                                                  price=10_000, size=5_000_000))  # fmt: skip
                    starts.append(t)
                    cid = d.client_ids[0]
                    while k.orders.get(cid).state != "accepted":  # type: ignore[union-attr]
                        await anyio.sleep(0)
            tg.cancel_scope.cancel()
    lat = [a - s for a, s in zip(arrivals, starts)]
    return {"live_wire_p50_us": statistics.median(lat) / 1000, "live_wire_p99_us": _pct(lat, 0.99),
            "live_wire_orders": float(len(lat))}  # fmt: skip


def live_figures(quick: bool = False) -> dict[str, float]:
    from loguru import logger

    figs = sign_figures(300 if quick else 2000)
    logger.disable("adapters")
    try:
        figs.update(anyio.run(_wire, 50 if quick else 300))
    finally:
        logger.enable("adapters")
    return figs
