"""polybot.htmlreport: the HTML session report, through the CLI (``replay --report``,
``report``), its collector on a hand-worked session, escaping, and the downsampler."""

from __future__ import annotations

import contextlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.cli import main
from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    Event,
    MarketInfo,
    OrderAccepted,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    RiskRejected,
)
from polybot.execution import RecordedExecutor
from polybot.htmlreport import Downsampler, SessionSeries, default_report_path, reason_pattern, render_html
from polybot.kernel import Kernel
from polybot.replay import summarize
from polybot.report import SessionReport
from polybot.units import SCALE

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "recordings" / "sim-session.jsonl.gz"  # three binary markets, six books


# ------------------------------------------------------------------------------ a tiny DOM


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Node] = []
        self.items: list[str | Node] = []  # text and child elements in document order

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def text(self) -> str:
        return "".join(i if isinstance(i, str) else i.text() for i in self.items)

    def iter(self) -> Any:
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]

    def find(self, tag: str, cls: str | None = None) -> Node:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}>"
        return found[0]


VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source"}


class DomBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.starttags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.starttags.append((tag, a))
        n = Node(tag, a, self.cur)
        self.cur.children.append(n)
        self.cur.items.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.starttags.append((tag, a))
        n = Node(tag, a, self.cur)
        self.cur.children.append(n)
        self.cur.items.append(n)

    def handle_endtag(self, tag: str) -> None:
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent  # type: ignore[assignment]
        assert n is not self.root, f"unbalanced </{tag}>"
        self.cur = n.parent  # type: ignore[assignment]

    def handle_data(self, data: str) -> None:
        self.cur.items.append(data)


def parse(text: str) -> DomBuilder:
    p = DomBuilder()
    p.feed(text)
    p.close()
    assert p.cur is p.root, "unclosed elements"
    return p


def table_rows(dom: DomBuilder, cls: str) -> list[list[str]]:
    t = dom.root.find("table", cls)
    return [[td.text().strip() for td in tr.find_all("td")] for tr in t.find("tbody").find_all("tr")]


def polyline_points(node: Node) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in node.attrs["points"].split())]


def assert_self_contained(dom: DomBuilder, text: str) -> None:
    for tag, a in dom.starttags:
        assert not (tag == "script" and "src" in a), "external script"
        assert tag not in ("link", "iframe", "img", "object", "embed"), f"<{tag}> loads something"
        for k in ("src", "href", "xlink:href"):
            assert k not in a, f"<{tag} {k}=...>"
    assert "@import" not in text and "url(" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    ) and "https://" not in text


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------ the CLI run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulator session with the demo config, caps tightened so that the risk chain rejects:
    ``polybot replay --json --report --out``, then ``polybot report`` on the journal it wrote."""
    d = tmp_path_factory.mktemp("htmlreport")
    text = (ROOT / "config" / "demo.toml").read_text()
    text = text.replace('max_shares = "100"', 'max_shares = "20"').replace('per_market = "50"', 'per_market = "8"')
    cfg = d / "tight.toml"
    cfg.write_text(text)
    html_path, journal = d / "out" / "session.html", d / "session.jsonl"
    rc, out, _ = cli("replay", str(SESSION), "--config", str(cfg), "--json", "--report", str(html_path), "--out", str(journal))
    assert rc == 0
    summary = json.loads(out.strip().splitlines()[-1])
    rc2, out2, err2 = cli("report", str(journal), "--config", str(cfg))
    assert rc2 == 0, err2
    text = html_path.read_text(encoding="utf-8")
    return {"summary": summary, "html": text, "dom": parse(text), "journal": journal, "report_out": out2,
            "journal_html": default_report_path(journal), "cfg": cfg}  # fmt: skip


def test_replay_report_header_and_equity(run: dict[str, Any]) -> None:
    s, dom = run["summary"], run["dom"]
    t = s["report"]["totals"]
    assert t["fills"] > 5 and t["orders_rejected_risk"] > 100  # the run trades and is refused
    assert_self_contained(dom, run["html"])
    meta = {dt.text(): dd.text() for dt, dd in zip(dom.root.find_all("dt"), dom.root.find_all("dd"))}
    assert meta["file"] == str(SESSION) and meta["mode"] == "what-if" and meta["strategies"] == "dip (example_buy_below)"
    assert meta["inputs"].startswith(f"{s['inputs']:,} inputs")
    cards = {c.find("div", "k").text(): c.find("div", "v").text() for c in dom.root.find_all("div", "card")}
    assert cards["net PnL"] == s["pnl"]["net"] == t["net_pnl_str"]
    assert cards["fees"] == s["pnl"]["fees"] and cards["max drawdown"] == t["max_drawdown_str"]
    assert cards["fills"] == str(t["fills"]) and cards["rejected by risk"] == f"{t['orders_rejected_risk']:,}"
    eq = dom.root.find("svg", "equity")
    pts = polyline_points(eq.find("polyline", "equity-line"))
    assert len(pts) > 2 and [x for x, _ in pts] == sorted(x for x, _ in pts)
    # the hover read-out carries the exact figures: the last point is the final net PnL
    hover = json.loads(eq.attrs["data-hover"])
    assert len(hover) == len(pts) and hover[-1][2].endswith(f"equity {t['net_pnl_str']}")
    dd = dom.root.find("svg", "drawdown")
    dd_hover = json.loads(dd.attrs["data-hover"])
    peak = max(float(h[2].rsplit(" ", 1)[1]) for h in dd_hover)
    assert round(peak * SCALE) == t["max_drawdown"]  # the downsampler keeps the extreme


def test_fill_markers_match_the_summary(run: dict[str, Any]) -> None:
    s, dom = run["summary"], run["dom"]
    t = s["report"]["totals"]
    charts = dom.root.find_all("svg", "prices")
    assert 1 < len(charts) <= 8
    groups = dom.root.find_all("g", "fills")
    assert sum(int(g.attrs["data-fills"]) for g in groups) == t["fills"] == s["fills"]  # every asset with fills is charted
    markers = dom.root.find_all("path", "fill-marker")
    legend = dom.root.find("div", "legend").find_all("path", "fill-marker")
    in_charts = [m for m in markers if m not in legend]
    assert len(in_charts) == t["fills"]
    assert sum("maker" in m.classes for m in in_charts) == t["maker_fills"]
    assert sum("taker" in m.classes for m in in_charts) == t["taker_fills"]
    assert all(("buy" in m.classes) != ("sell" in m.classes) for m in in_charts)
    assert all(m.find("title").text().count(" @ ") == 1 for m in in_charts)
    for c in charts:  # best bid and ask drawn on every chart
        assert c.find("path", "bid-line").attrs["d"].startswith("M") and c.find("path", "ask-line").attrs["d"]


def test_tables_carry_the_json_figures(run: dict[str, Any]) -> None:
    s, dom = run["summary"], run["dom"]
    rep = s["report"]
    rows = table_rows(dom, "per-strategy")
    by_name = {r[0].split()[0]: r for r in rows}
    assert set(by_name) == {*rep["per_strategy"], "account"}
    for name, r in rep["per_strategy"].items():
        cells = by_name[name]
        assert cells[1] == r["net_pnl_str"] and cells[2] == r["realized_pnl_str"] and cells[4] == r["fees_str"]
    assert by_name["account"][1] == s["pnl"]["net"]
    markets = table_rows(dom, "per-market")
    assert len(markets) == len(rep["per_market"])
    for cells, (m, r) in zip(markets, rep["per_market"].items()):
        assert "Sim market" in cells[0] and cells[1] == r["net_pnl_str"]
    # risk rejections: grouped counts add up to the report's, the last 50 are listed newest first
    t = rep["totals"]
    reasons = table_rows(dom, "risk-reasons")
    assert sum(int(r[2].replace(",", "")) for r in reasons) == t["orders_rejected_risk"]
    by_validator: dict[str, int] = {}
    for r in reasons:
        by_validator[r[0]] = by_validator.get(r[0], 0) + int(r[2].replace(",", ""))
    assert by_validator == t["rejected_by_validator"]
    recent = table_rows(dom, "risk-recent")
    assert len(recent) == 50 and all(r[1] == "dip" and r[2].startswith("pb-") for r in recent)
    assert recent[0][0] >= recent[-1][0]
    journal_rej = [json.loads(x)["event"] for x in run["journal"].read_bytes().splitlines() if b'"risk_rejected"' in x]
    assert recent[0][2] == ", ".join(journal_rej[-1]["client_ids"]) and recent[0][4] == journal_rej[-1]["reason"]


def test_report_command_on_the_journal(run: dict[str, Any]) -> None:
    """``polybot report`` replays the journal faithfully and draws the same session."""
    out = run["journal_html"]
    assert out.name == "session.html" and run["report_out"].strip() == str(out)
    text = out.read_text(encoding="utf-8")
    dom = parse(text)
    assert_self_contained(dom, text)
    meta = {dt.text(): dd.text() for dt, dd in zip(dom.root.find_all("dt"), dom.root.find_all("dd"))}
    assert meta["mode"] == "faithful" and meta["divergences"] == "0" and meta["config"] == str(run["cfg"])
    a, b = run["dom"], dom
    assert a.root.find("polyline", "equity-line").attrs == b.root.find("polyline", "equity-line").attrs
    assert [m.attrs for m in a.root.find_all("path", "fill-marker")] == [m.attrs for m in b.root.find_all("path", "fill-marker")]
    assert table_rows(a, "per-strategy") == table_rows(b, "per-strategy")
    assert table_rows(a, "risk-recent") == table_rows(b, "risk-recent")
    # --out names the file
    rc, stdout, _ = cli("report", str(run["journal"]), "--config", str(run["cfg"]), "--out", str(out.with_name("x.html")))
    assert rc == 0 and stdout.strip() == str(out.with_name("x.html")) and out.with_name("x.html").exists()


def test_executor_rejections_table(tmp_path: Path) -> None:
    html_path = tmp_path / "demo.html"
    rc, out, _ = cli("replay", str(SESSION), "--config", str(ROOT / "config" / "demo.toml"), "--report", str(html_path))
    assert rc == 0 and f"html report: {html_path}" in out
    dom = parse(html_path.read_text(encoding="utf-8"))
    n = int(re.search(r"rejected (\d+)\n", out).group(1))  # type: ignore[union-attr]
    rows = table_rows(dom, "exec-reasons")
    assert n > 0 and sum(int(r[1]) for r in rows) == n
    recent = table_rows(dom, "exec-recent")
    assert len(recent) == n and all(r[4].startswith("min size") for r in recent)
    assert "No order was rejected by the risk chain." in dom.root.text()


def test_default_report_path() -> None:
    assert default_report_path("var/x/journal.jsonl") == Path("var/x/journal.html")
    assert default_report_path("var/x/journal.jsonl.gz") == Path("var/x/journal.html")
    assert default_report_path("a.b/session") == Path("a.b/session.html")


def test_reason_pattern_keeps_ids() -> None:
    r = "account: market 0xcf8162...39f9 worst-case loss would be 12.37029 > cap 8: 0.49 shares, min 5."
    assert reason_pattern(r) == "account: market 0xcf8162...39f9 worst-case loss would be # > cap #: # shares, min #."
    assert reason_pattern("asset 24542149...9379 would hold -3 shares") == "asset 24542149...9379 would hold # shares"


# ------------------------------------------------------------------------------ by hand, and escaping

EVIL = '<script>alert("x")</script>'
EVIL_STRATEGY = "<img src=x onerror=alert(1)>"


def _events(k: Kernel, ts: int, *evs: Event) -> None:
    k.process(ts, "events", ENCODER.encode(list(evs)))


def _venue(k: Kernel, ts: int, *evs: Event) -> None:
    k.process(ts, "exec.rec", ENCODER.encode(list(evs)))


def test_series_on_a_hand_worked_session_and_escaping() -> None:
    """A session whose every figure is known, with hostile names and reasons: the series hold the
    report's equity exactly and every string from data is escaped."""
    k = Kernel(executor=RecordedExecutor("rec"))
    rep = SessionReport(k, sample_ns=1_000)
    series = SessionSeries(rep)
    book = BookSnapshot(asset_id="Y1", market="m1", bids=((380_000, 100 * SCALE),), asks=((400_000, 100 * SCALE),))
    _events(k, 1, MarketInfo(market="m1", asset_ids=("Y1", "N1"), outcomes=("<b>Yes</b>", "No"), question=EVIL), book)
    d = k.submit(EVIL_STRATEGY, OrderIntent(strategy="", asset_id="Y1", side="BUY", price=400_000, size=10 * SCALE))
    cid = d.client_ids[0]
    # 10 YES at 0.40, taker, fee 0.01, marked at the 0.38 bid: 3.80 - 4.00 - 0.01 = -0.21
    _venue(k, 11, OrderAccepted(client_id=cid), OrderFilled(client_id=cid, asset_id="Y1", trade_id="t1", side="BUY",
                                                             price=400_000, size=10 * SCALE, liquidity="taker", fee=10_000))  # fmt: skip
    # the bid rises to 0.45 (a held asset, sampled): 4.50 - 4.01 = +0.49
    _events(k, 5_000, BookDelta(asset_id="Y1", side="BID", price=450_000, size=SCALE))
    _events(k, 6_000, RiskRejected(strategy=EVIL_STRATEGY, client_ids=("c<1>",), validator="v<&>", reason=EVIL + " 12.5 > 8"))
    d2 = k.submit(EVIL_STRATEGY, OrderIntent(strategy="", asset_id="Y1", side="BUY", price=300_000, size=10 * SCALE))
    _venue(k, 7_000, OrderRejected(client_id=d2.client_ids[0], reason=f"venue says {EVIL}"))

    assert series.equity.points() == [(11, -210_000), (5_000, 490_000)]
    assert series.drawdown.points() == [(11, 210_000), (5_000, 0)]
    assert series.prices["Y1"].bid.points() == [(1, 380_000), (5_000, 450_000)]
    assert series.fill_counts["Y1"] == [1, 1, 0, 0, 1]
    assert series.risk_orders == 1 and series.exec_reasons[f"venue says {EVIL}"][0] == 1
    summary = summarize(k, {}, 0.0, f"{EVIL}.jsonl", "what-if")
    summary["report"] = rep.summary()
    text = render_html(summary, series, config=EVIL)
    assert series.final_equity == 490_000 == summary["report"]["totals"]["net_pnl"]

    assert "<script>alert" not in text and "<img src=x" not in text and "<b>Yes" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    dom = parse(text)
    assert_self_contained(dom, text)
    scripts = dom.root.find_all("script")
    assert len(scripts) == 1 and "alert" not in scripts[0].text()  # only the page's own hover script
    assert not any(k_.startswith("on") for _, a in dom.starttags for k_ in a)  # no event-handler attributes
    page = dom.root.text()
    assert EVIL in page and EVIL_STRATEGY in page  # shown as text, verbatim
    assert table_rows(dom, "per-strategy")[0][0] == EVIL_STRATEGY and table_rows(dom, "per-strategy")[0][1] == "0.49"
    assert table_rows(dom, "risk-recent") == [["+0.000 s", EVIL_STRATEGY, "c<1>", "v<&>", EVIL + " 12.5 > 8"]]
    assert table_rows(dom, "risk-reasons") == [["v<&>", EVIL + " # > #", "1", "1"]]
    assert table_rows(dom, "exec-reasons") == [[f"venue says {EVIL}", "1"]]
    titles = [h.text() for h in dom.root.find_all("h3")]
    assert f"{EVIL} · <b>Yes</b>" in titles  # the price chart's title: the market question and the outcome
    marker = dom.root.find("g", "fills").find("path", "fill-marker")
    assert marker.classes == ["fill-marker", "buy", "taker"] and EVIL_STRATEGY in marker.find("title").text()


# ------------------------------------------------------------------------------ the downsampler


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(-10**9, 10**9)), min_size=1, max_size=600),
    st.integers(4, 64),
)
def test_downsampler_bounds_and_keeps_the_shape(steps: list[tuple[int, int]], max_points: int) -> None:
    t = 10**18
    pts = []
    for dt, v in steps:
        t += dt
        pts.append((t, v))
    ds = Downsampler(max_points)
    for p in pts:
        ds.add(*p)
    kept = ds.points()
    assert len(kept) <= max_points and ds.count == len(pts)
    assert kept[0] == pts[0] and kept[-1] == pts[-1] and ds.last == pts[-1]
    assert min(v for _, v in kept) == min(v for _, v in pts)
    assert max(v for _, v in kept) == max(v for _, v in pts)
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)
    assert set(kept) <= set(pts)
    if len(pts) <= max_points // 4 and len({x for x, _ in pts}) == len(pts):
        assert kept == pts  # no more points than buckets: nothing is dropped


def test_downsampler_long_series_is_bounded_and_exact_when_small() -> None:
    small = Downsampler(40)
    for i in range(10):
        small.add(i * 1000, i * i)
    assert small.points() == [(i * 1000, i * i) for i in range(10)]  # fewer buckets than the cap: all kept
    ds = Downsampler(400)
    n = 200_000
    for i in range(n):
        ds.add(i * 1_000_000, (i * 7919) % 10_007 - (5_000_000 if i == 123_456 else 0))
    kept = ds.points()
    assert len(kept) <= 400 and len(ds.buckets) <= 100
    assert (123_456_000_000, (123_456 * 7919) % 10_007 - 5_000_000) in kept  # the spike survives
    assert kept[0] == (0, 0) and kept[-1][0] == (n - 1) * 1_000_000
    with pytest.raises(ValueError):
        Downsampler(3)
