"""The operator API's on-chain actions: POST /api/chain/{action} is a control input through the
kernel's door, checked like a strategy's request; GET /api/chain shows what is on its way."""

from __future__ import annotations

from pathlib import Path

import anyio

from polybot.api.server import ROUTES, openapi
from polybot.replay import replay

from test_api import config, first_fill, running, token_of


def test_split_then_merge_through_the_api_and_refusals_name_the_field(tmp_path: Path) -> None:
    cfg = config(tmp_path, speed=2)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            await first_fill(d)  # the catalog is known by now
            tok = token_of(cfg)
            k = d.kernel
            info = next(iter(k.catalog))
            y, n = info.asset_ids
            y0, n0 = k.portfolio.size(y, "dip"), k.portfolio.size(n, "dip")
            st, body = await call("POST", "/api/chain/split", {"market": info.market, "amount": "5", "strategy": "dip",
                                                                "reason": "test"}, token=tok)  # fmt: skip
            assert st == 200, body
            assert [s["step"] for s in body["steps"]] == ["position_action", "position_action_done"]
            assert k.portfolio.size(y, "dip") == y0 + 5_000_000 and k.portfolio.size(n, "dip") == n0 + 5_000_000
            st, body = await call("POST", "/api/chain/merge", {"market": info.market, "amount": "5", "strategy": "dip"},
                                  token=tok)  # fmt: skip
            assert st == 200 and body["steps"][-1]["step"] == "position_action_done"
            assert k.portfolio.size(y, "dip") == y0 and k.portfolio.size(n, "dip") == n0
            # refused by the kernel (not resolved): 409 with the reason
            st, body = await call("POST", "/api/chain/redeem", {"market": info.market}, token=tok)
            assert st == 409 and body["steps"][0]["reason"] == "market not resolved"
            # refused by the API before the door
            st, body = await call("POST", "/api/chain/merge", {"market": info.market, "amount": "-2"}, token=tok)
            assert st == 422 and body["field"] == "amount"
            st, body = await call("POST", "/api/chain/merge", {"amount": "2"}, token=tok)
            assert st == 422 and body["field"] == "market"
            st, body = await call("POST", "/api/chain/burn", {"market": info.market}, token=tok)
            assert st == 404
            st, body = await call("POST", "/api/chain/merge", {"market": info.market, "amount": "2"})
            assert st == 401
            st, view = await call("GET", "/api/chain")
            assert view["pending"] == [] and [r["action"] for r in view["recent"]] == ["split", "split", "merge", "merge",
                                                                                      "redeem"]  # fmt: skip
            st, status = await call("GET", "/api/status")
            assert status["chain_pending"] == 0

    anyio.run(main)
    s = replay(Path(cfg.engine.data_dir) / cfg.engine.journal_file, cfg, mode="faithful")
    assert s["divergences"] == 0, s


def test_openapi_has_the_chain_routes() -> None:
    paths = openapi()["paths"]
    assert "post" in paths["/api/chain/{action}"] and "get" in paths["/api/chain"]
    assert any(r.path == "/api/chain/{action}" for r in ROUTES)
