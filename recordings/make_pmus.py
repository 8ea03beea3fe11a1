"""Make the Polymarket US recording (deterministic: same code, same bytes).

    .venv/bin/python recordings/make_pmus.py [OUT_DIR]      # writes pmus-spread-capture.jsonl.gz

The market path of ``spread-capture.jsonl.gz`` (recordings/make_quoting.py: "Will the council
approve the stadium bond?", one binary market, YES book and mirrored NO book), as Polymarket US
would send it to the ``polymarket-us`` feed (adapters/polymarket_us/feed.py), in that venue's own
wire format (the official ``polymarket-us`` SDK's shapes):

* ``polymarket_us.rest``: the catalog answer the feed fetches first, ``GET /v1/markets?slug=...``
  (one market, slug ``council-stadium-bond``, ``marketSides`` Yes (long) / No, tick 0.01,
  minimum 1 share), in the feed's journal envelope (``{"path", "status", "query", "body"}``);
* ``polymarket_us.market``: one ``marketData`` frame (the FULL YES book: the venue sends one
  instrument per market, in YES terms; the feed's decoder renders the NO book as its mirror)
  after every input of the original that changed the YES book, and one ``trade`` frame for each
  YES trade print (the taker's intent from the print's side).

Receive times are the original's. The NO token's events of the original are the mirror of the
YES ones and are not needed: the venue has no NO book.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.polymarket_us import MARKET_SOURCE, REST_SOURCE  # noqa: E402
from adapters.polymarket_us.wire import rest_input  # noqa: E402
from polybot.units import from_units  # noqa: E402

NAME = "pmus-spread-capture.jsonl.gz"
SOURCE = ROOT / "recordings" / "spread-capture.jsonl.gz"
SLUG = "council-stadium-bond"
EVENT = "council-stadium-bond-vote"


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000 // 1_000_000:03d}Z"


def _amount(v: int) -> dict[str, str]:
    return {"value": from_units(v, 2), "currency": "USD"}


def _market(info: dict[str, Any], t0: int) -> dict[str, Any]:
    return {
        "id": 7301, "slug": SLUG, "title": info.get("question", ""), "outcome": "Yes",
        "description": "Resolves Yes if the council approves the stadium bond at its vote.",
        "active": True, "closed": False, "eventSlug": EVENT, "state": "MARKET_STATE_OPEN",
        "marketSides": [{"identifier": SLUG, "description": "Yes", "long": True},
                        {"identifier": SLUG, "description": "No", "long": False}],
        "orderPriceMinTickSize": 0.01, "minimumTradeQty": 1,
        "startDate": _iso(t0 - 86_400 * 1_000_000_000), "endDate": _iso(t0 + 30 * 86_400 * 1_000_000_000),
    }  # fmt: skip


def _book_frame(bids: dict[int, int], asks: dict[int, int], ltp: int, ts: int) -> dict[str, Any]:
    md: dict[str, Any] = {
        "marketSlug": SLUG,
        "bids": [{"px": _amount(p), "qty": from_units(bids[p])} for p in sorted(bids, reverse=True)],
        "offers": [{"px": _amount(p), "qty": from_units(asks[p])} for p in sorted(asks)],
        "state": "MARKET_STATE_OPEN",
        "transactTime": _iso(ts),
    }
    if ltp:
        md["stats"] = {"lastTradePx": _amount(ltp)}
    return {"requestId": "md-1", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA", "marketData": md}


def _trade_frame(price: int, size: int, side: str | None, ts: int) -> dict[str, Any]:
    # the taker bought YES (lifted an offer) or sold it (hit a bid); the maker is the other side
    taker = ("ORDER_SIDE_BUY", "ORDER_INTENT_BUY_LONG") if side != "SELL" else ("ORDER_SIDE_SELL", "ORDER_INTENT_SELL_LONG")
    maker = ("ORDER_SIDE_SELL", "ORDER_INTENT_SELL_LONG") if side != "SELL" else ("ORDER_SIDE_BUY", "ORDER_INTENT_BUY_LONG")
    return {"requestId": "tr-1", "subscriptionType": "SUBSCRIPTION_TYPE_TRADE",
            "trade": {"marketSlug": SLUG, "price": _amount(price), "quantity": {"value": from_units(size), "currency": "USD"},
                      "tradeTime": _iso(ts), "maker": {"side": maker[0], "intent": maker[1]},
                      "taker": {"side": taker[0], "intent": taker[1]}}}  # fmt: skip


def lines() -> list[str]:
    out: list[str] = []
    yes = ""
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    ltp = 0
    with gzip.open(SOURCE, "rt") as f:
        for raw in f:
            rec = json.loads(raw)
            ts = rec["ts"]
            changed = False
            frames: list[dict[str, Any]] = []
            for ev in rec["msg"]:
                kind = ev["type"]
                if kind == "market_info":
                    yes = ev["asset_ids"][0]
                    body = json.dumps({"markets": [_market(ev, ts)]}, separators=(",", ":")).encode()
                    env = rest_input("/v1/markets", 200, body, {"slug": [SLUG]})
                    out.append(json.dumps({"ts": ts, "source": REST_SOURCE, "msg": json.loads(env)}, separators=(",", ":")))
                    continue
                if ev.get("asset_id") != yes:
                    continue  # the NO token: the mirror, which this venue does not send
                if kind == "book":
                    bids = {p: s for p, s in ev.get("bids", [])}
                    asks = {p: s for p, s in ev.get("asks", [])}
                    changed = True
                elif kind == "book_delta":
                    side = bids if ev["side"] == "BID" else asks
                    if ev["size"]:
                        side[ev["price"]] = ev["size"]
                    else:
                        side.pop(ev["price"], None)
                    changed = True
                elif kind == "trade":
                    ltp = ev["price"]
                    frames.append(_trade_frame(ev["price"], ev["size"], ev.get("side"), ts))
            if changed:
                frames.insert(0, _book_frame(bids, asks, ltp, ts))
            for i, fr in enumerate(frames):
                out.append(json.dumps({"ts": ts + i, "source": MARKET_SOURCE, "msg": fr}, separators=(",", ":")))
    return out


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else ROOT / "recordings"
    data = ("\n".join(lines()) + "\n").encode()
    with open(out_dir / NAME, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(data)
    n = data.count(b"\n")
    print(f"wrote {out_dir / NAME}: {n} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
