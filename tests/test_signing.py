"""Every vector in ../shared/vectors/signing_vectors.json, reproduced: order hashes and signatures
(V1 legacy through the client's V1 builder; V2, neg-risk V2 and V3 through our OrderSigner), the
POST body, ClobAuth (L1), the L2 HMACs and the limit/market amounts."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("py_clob_client_v2")

from adapters.polymarket.signing import (  # noqa: E402
    ApiCreds,
    Credentials,
    OrderSigner,
    exchange_for,
    hmac_signature,
    is_v3_position,
    l2_headers,
    order_salt,
)
from polybot.events import OrderIntent  # noqa: E402
from polybot.execution.rules import limit_order_amounts, market_order_amounts  # noqa: E402
from polybot.units import to_units  # noqa: E402

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "shared" / "vectors" / "signing_vectors.json").read_text())
PK = VECTORS["private_key"]
V2 = [v for v in VECTORS["vectors"] if v["domain"]["version"] in ("2", "3")]
V1 = [v for v in VECTORS["vectors"] if v["domain"]["version"] == "1"]


def test_the_file_has_what_we_expect() -> None:
    assert len(V1) == 3 and len(V2) == 4


@pytest.mark.parametrize("v", V2, ids=lambda v: v["label"][:40])
def test_v2_and_v3_orders_reproduce(v: dict) -> None:
    m, dom = v["message"], v["domain"]
    creds = Credentials(PK, chain_id=v["chainId"])
    assert creds.address == VECTORS["address"] == m["maker"] == m["signer"]
    neg_risk = dom["verifyingContract"].lower() == exchange_for(137, True, False)[0].lower()
    v3 = dom["version"] == "3"
    assert exchange_for(v["chainId"], neg_risk, v3) == (dom["verifyingContract"], dom["version"])
    assert is_v3_position(str(m["tokenId"])) == v3
    signer = OrderSigner(creds, owner="<api-key-uuid>")
    so = signer.sign_amounts(str(m["tokenId"]), "BUY" if m["side"] == 0 else "SELL", m["makerAmount"], m["takerAmount"],
                             neg_risk=neg_risk, v3=v3, salt=m["salt"], timestamp_ms=m["timestamp"])  # fmt: skip
    assert so.order_hash == v["order_hash"]
    assert so.body["order"]["signature"] == v["signature"] == v["independent_polymarket_client_signature"]
    assert so.body == v["post_order_body_py_clob_client_v2"]


@pytest.mark.parametrize("v", V1, ids=lambda v: v["label"][:40])
def test_v1_legacy_vectors_reproduce_with_the_clients_v1_builder(v: dict) -> None:
    """We never send V1 orders (production refuses them since 2026-04-28); the vectors still
    check that the installed client signs what the reference says."""
    from py_clob_client_v2.order_utils.exchange_order_builder_v1 import ExchangeOrderBuilderV1
    from py_clob_client_v2.order_utils.model.order_data_v1 import OrderDataV1
    from py_clob_client_v2.order_utils.model.side import Side
    from py_clob_client_v2.signer import Signer

    m, dom = v["message"], v["domain"]
    b = ExchangeOrderBuilderV1(dom["verifyingContract"], v["chainId"], Signer(PK, v["chainId"]),
                               generate_salt=lambda: str(m["salt"]))  # fmt: skip
    order = b.build_order(OrderDataV1(maker=m["maker"], taker=m["taker"], tokenId=str(m["tokenId"]),
                                      makerAmount=str(m["makerAmount"]), takerAmount=str(m["takerAmount"]),
                                      side=Side.BUY, feeRateBps=str(m["feeRateBps"]), nonce=str(m["nonce"]),
                                      signer=m["signer"], expiration=str(m["expiration"]), signatureType=0))  # fmt: skip
    typed = b.build_order_typed_data(order)
    assert b.build_order_signature(typed) == v["signature"]
    assert b.build_order_hash(typed) == v["order_hash"]


def test_l1_clob_auth_vector() -> None:
    a = VECTORS["l1_clob_auth"]
    h = Credentials(PK, chain_id=a["chainId"]).l1_headers(timestamp=a["timestamp"], nonce=a["nonce"])
    assert h["POLY_SIGNATURE"] == a["signature"]
    assert h["POLY_ADDRESS"] == VECTORS["address"] and h["POLY_NONCE"] == "23" and h["POLY_TIMESTAMP"] == "10000000"
    h137 = Credentials(PK, chain_id=137).l1_headers(timestamp=a["timestamp"], nonce=a["nonce"])
    assert h137["POLY_SIGNATURE"] == a["chain137_same_inputs"]


def test_l2_hmac_vectors() -> None:
    a = VECTORS["l2_hmac"]
    assert hmac_signature(a["secret"], a["timestamp"], a["method"], a["path"], a["body"]) == a["signature"]
    d = VECTORS["l2_hmac_example_delete_order"]
    assert hmac_signature(a["secret"], d["timestamp"], d["method"], d["path"], d["body"]) == d["signature"]
    h = l2_headers(ApiCreds("k", a["secret"], "p"), "0xabc", d["method"], d["path"], d["body"].encode(),
                   timestamp=int(d["timestamp"]))  # fmt: skip
    assert h == {"POLY_ADDRESS": "0xabc", "POLY_SIGNATURE": d["signature"], "POLY_TIMESTAMP": d["timestamp"],
                 "POLY_API_KEY": "k", "POLY_PASSPHRASE": "p"}  # fmt: skip


def test_hmac_signs_the_bytes_sent_even_with_a_quote() -> None:
    import base64
    import hashlib
    import hmac as _hmac

    secret = VECTORS["l2_hmac"]["secret"]
    body = '{"note":"it\'s"}'
    want = base64.urlsafe_b64encode(_hmac.new(base64.urlsafe_b64decode(secret), f"1POST/x{body}".encode(),
                                              hashlib.sha256).digest()).decode()  # fmt: skip
    assert hmac_signature(secret, 1, "POST", "/x", body) == want


@pytest.mark.parametrize("v", VECTORS["limit_order_amounts_py_clob_client_v2"], ids=str)
def test_limit_amounts(v: dict) -> None:
    got = limit_order_amounts(v["side"], to_units(str(v["size"])), to_units(str(v["price"])), to_units(v["tick"]))
    assert got == (int(v["makerAmount"]), int(v["takerAmount"]))


@pytest.mark.parametrize("v", VECTORS["market_order_amounts_py_clob_client_v2"], ids=str)
def test_market_amounts(v: dict) -> None:
    got = market_order_amounts(v["side"], to_units(str(v["amount"])), to_units(str(v["price"])), to_units(v["tick"]))
    assert got == (int(v["makerAmount"]), int(v["takerAmount"]))


def test_an_order_hash_is_a_function_of_the_journaled_order() -> None:
    """Same client id and creation time -> same salt, timestamp and hash (what crash recovery
    relies on to ask the venue about an order whose answer it never saw)."""
    s = OrderSigner(Credentials(PK), owner="key")
    it = OrderIntent(strategy="s", asset_id="1234", side="BUY", price=400_000, size=10_000_000, client_id="pb-7")
    a = s.sign(it, tick=10_000, neg_risk=False, v3=False, created_ns=1_790_000_000_123_456_789)
    b = s.sign(it, tick=10_000, neg_risk=False, v3=False, created_ns=1_790_000_000_123_456_789)
    c = s.sign(msgspec.structs.replace(it, client_id="pb-8"), tick=10_000, neg_risk=False, v3=False,
               created_ns=1_790_000_000_123_456_789)  # fmt: skip
    assert a == b and a.order_hash != c.order_hash
    assert a.body["order"]["salt"] == order_salt("pb-7", 1_790_000_000_123_456_789) < 2**53
    assert a.body["order"]["timestamp"] == "1790000000123"
    assert (a.maker_amount, a.taker_amount) == (4_000_000, 10_000_000)
    assert a.body["owner"] == "key" and a.body["orderType"] == "GTC" and a.body["postOnly"] is False


def test_order_kinds_and_wallet_types() -> None:
    it = OrderIntent(strategy="s", asset_id="1234", side="BUY", price=570_000, size=17_540_000, client_id="pb-1",
                     kind="market", tif="FOK")  # fmt: skip
    s = OrderSigner(Credentials(PK), owner="key")
    so = s.sign(it, tick=10_000, neg_risk=False, v3=False, created_ns=1)
    assert (so.maker_amount, so.taker_amount) == market_order_amounts("BUY", 570_000 * 17_540_000 // 1_000_000, 570_000, 10_000)
    assert so.body["orderType"] == "FOK"
    gtd = msgspec.structs.replace(it, kind="limit", tif="GTD", expire_ts=1_800_000_000_000_000_000, post_only=True)
    b = s.sign(gtd, tick=10_000, neg_risk=True, v3=False, created_ns=1).body
    assert b["order"]["expiration"] == "1800000000" and b["postOnly"] is True and b["orderType"] == "GTD"
    funder = "0x1111111111111111111111111111111111111111"
    for st, code in (("proxy", 1), ("safe", 2), ("poly_1271", 3)):
        c = Credentials(PK, signature_type=st, funder=funder)
        o = OrderSigner(c, owner="key").sign(it, tick=10_000, neg_risk=False, v3=False, created_ns=1).body["order"]
        assert o["maker"] == funder and o["signer"] == VECTORS["address"] and o["signatureType"] == code
        if st == "poly_1271":  # the ERC-1271 TypedDataSign wrapper: sig + domain sep + contents hash + type + len
            assert len(o["signature"]) > 2 + 130 + 128
        else:
            assert len(o["signature"]) == 2 + 130
    with pytest.raises(ValueError, match="funder"):
        Credentials(PK, signature_type="safe")
    with pytest.raises(ValueError, match="funder"):
        Credentials(PK, funder=funder)
    with pytest.raises(ValueError, match="signature_type"):
        Credentials(PK, signature_type="ledger")


def test_a_bad_key_is_refused_without_echoing_it() -> None:
    bad = "0x" + "zz" * 32
    with pytest.raises(ValueError) as ei:
        Credentials(bad)
    assert bad not in str(ei.value) and "zz" not in str(ei.value)
    c = Credentials(PK)
    assert PK[2:] not in repr(c) and PK[2:] not in str(c)
    assert "secret" not in repr(ApiCreds("key", "secret", "pass")) and "pass" not in str(ApiCreds("key", "secret", "pass"))
