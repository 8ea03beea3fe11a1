"""``polybot wallet status | approve | wrap`` end to end against the fake chain
(adapters/polymarket/simchain.py): what is printed, what is sent, the confirmation prompt,
--dry-run, idempotence, config errors naming the field, and no secret in any output."""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("eth_account")

from adapters.polymarket import chain as C  # noqa: E402
from adapters.polymarket.relayer import derive_safe  # noqa: E402
from adapters.polymarket.simchain import SimChain  # noqa: E402
from adapters.polymarket.wallet import run_wallet  # noqa: E402
from polybot import cli  # noqa: E402
from polybot.config import Secrets, parse_config  # noqa: E402

pytestmark = pytest.mark.anyio

PK = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
K = C.CHAINS[137]
ONE = 1_000_000
RPC_KEY = "s3cr3t-rpc-key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def fake_chain() -> AsyncIterator[tuple[SimChain, str]]:
    ch = SimChain(block_time_s=0.02)
    ch.fund(ADDR, "pol", 10**18)
    async with ch.serve() as url:
        yield ch, url


def config(url: str, executor: dict[str, Any] | None = None, **wallet: Any) -> Any:
    return parse_config({
        "engine": {"data_dir": tempfile.mkdtemp(prefix="wallet-")},  # approve/wrap lock it
        "executor": {"kind": "clob", "params": {"chain_id": 137, **(executor or {})}},
        "wallet": {"confirmations": 2, "poll_interval_s": 0.02, "resend_after_s": 0.5, "receipt_timeout_s": 5.0, **wallet},
    })  # fmt: skip


async def wallet(ch: SimChain, url: str, command: str, *, answers: list[str] | None = None, secrets: dict[str, str] | None = None,
                 cfg: Any = None, **kw: Any) -> tuple[int, str, list[str]]:  # fmt: skip
    """Run ``polybot wallet COMMAND``: (exit code, output, the prompts it asked)."""
    out = io.StringIO()
    asked: list[str] = []
    replies = list(answers or [])

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return replies.pop(0) if replies else ""

    sec = Secrets({"private_key": PK, "rpc_url": url + "/" + RPC_KEY, **(secrets or {})})
    cfg = cfg or config(url)
    rc = await run_wallet(cfg, sec, dict(cfg.executor.params), command, out=out, ask=ask, **kw)
    text = out.getvalue()
    assert PK[2:] not in text and RPC_KEY not in text  # never a secret, the RPC URL by its host only
    return rc, text, asked


async def test_status_approve_idempotent_and_prompt() -> None:
    async with fake_chain() as (ch, url):
        # two approvals already in place: approve must send exactly the other eleven
        ch._set_allow(K.pusd, ADDR, K.exchange_v2, C.MAX_UINT256)
        ch._set_approved(K.ctf, ADDR, K.exchange_v2, True)
        rc, text, _ = await wallet(ch, url, "status")
        assert rc == 0 and f"funder {ADDR}" in text and "POL 1" in text and "127.0.0.1" in text
        assert text.count("MISSING") == len(C.APPROVALS) - 2 and "ok      pusd.approve(exchange_v2)" in text
        # the prompt: "n" sends nothing
        rc, text, asked = await wallet(ch, url, "approve", answers=["n"])
        assert rc == 1 and asked and "not sent" in text and ch.sends == 0
        assert "approve(exchange_v3 0xe3333700cA9d93003F00f0F71f8515005F6c00Aa, unlimited)" in text
        assert "estimated gas 46,000 (limit 55,200)" in text
        # --dry-run: built, signed, hashes printed, nothing sent
        rc, text, asked = await wallet(ch, url, "approve", dry_run=True)
        assert rc == 0 and not asked and ch.sends == 0 and text.count("dry run: signed 0x") == len(C.APPROVALS) - 2
        # "y": sent and confirmed; exactly the missing ones
        rc, text, asked = await wallet(ch, url, "approve", answers=["y"])
        assert rc == 0 and asked and "every approval is set" in text and ch.sends == len(C.APPROVALS) - 2
        for a in C.APPROVALS:
            if a.kind == "erc20":
                assert ch.allowance(getattr(K, a.token), ADDR, getattr(K, a.spender)) == C.MAX_UINT256
            else:
                assert ch.is_approved(getattr(K, a.token), ADDR, getattr(K, a.spender))
        # a second run has nothing to do
        rc, text, asked = await wallet(ch, url, "approve", yes=True)
        assert rc == 0 and "nothing to approve" in text and not asked and ch.sends == len(C.APPROVALS) - 2
        rc, text, _ = await wallet(ch, url, "status")
        assert "MISSING" not in text and "every approval is set" in text


async def test_wrap_approves_then_wraps() -> None:
    async with fake_chain() as (ch, url):
        ch.fund(ADDR, "usdce", 30 * ONE)
        rc, text, _ = await wallet(ch, url, "wrap", amount="12.5", dry_run=True)
        assert rc == 0 and text.count("dry run: signed") == 2 and ch.sends == 0  # the approval and the wrap
        rc, text, asked = await wallet(ch, url, "wrap", amount="12.5", yes=True)
        assert rc == 0 and not asked and "step 2 of 2" in text
        assert ch.balance20(K.pusd, ADDR) == 12_500_000 and ch.balance20(K.usdce, ADDR) == 17_500_000
        assert ch.allowance(K.usdce, ADDR, K.collateral_onramp) == 0  # exactly the amount was approved
        rc, text, _ = await wallet(ch, url, "wrap", amount="100", yes=True)
        assert rc == 2 and "holds 17.5 USDC.e" in text
        rc, text, _ = await wallet(ch, url, "wrap", amount="1.2345678", yes=True)
        assert rc == 2 and "at most 6 decimals" in text


async def test_safe_wallet_goes_through_the_relayer() -> None:
    async with fake_chain() as (ch, url):
        safe = derive_safe(ADDR, K)
        ch.fund(safe, "usdce", 5 * ONE)
        cfg = config(url, {"signature_type": "safe", "funder": safe}, relayer_url=url + "/relayer")
        rc, text, _ = await wallet(ch, url, "approve", yes=True, cfg=cfg, secrets={"relayer_api_key": "rk"})
        assert rc == 0 and "one SAFE relayer transaction" in text and "every approval is set" in text
        assert ch.allowance(K.pusd, safe, K.exchange_v3) == C.MAX_UINT256 and ch.nonces.get(ADDR.lower(), 0) == 0
        rc, text, _ = await wallet(ch, url, "wrap", amount="5", yes=True, cfg=cfg, secrets={"relayer_api_key": "rk"})
        assert rc == 0 and ch.balance20(K.pusd, safe) == 5 * ONE
        rc, text, _ = await wallet(ch, url, "status", cfg=cfg, secrets={"relayer_api_key": "rk"})
        assert f"funder {safe} (safe)" in text and "warning" not in text


async def test_bad_config_and_missing_secrets_are_refused() -> None:
    async with fake_chain() as (ch, url):
        rc, text, _ = await wallet(ch, url, "status", cfg=config(url, {"chain_id": 80002}, chain_id=137))
        assert rc == 2 and "wallet.chain_id: 137 differs from executor.params.chain_id 80002" in text
        out = io.StringIO()
        cfg = config(url)
        rc = await run_wallet(cfg, Secrets({"private_key": PK}), dict(cfg.executor.params), "status", out=out)
        assert rc == 2 and "no RPC endpoint" in out.getvalue()
        rc = await run_wallet(cfg, Secrets({"rpc_url": url}), {}, "status", out=(out := io.StringIO()))
        assert rc == 2 and "private_key is missing" in out.getvalue()
        rc, text, _ = await wallet(ch, url, "status", cfg=config(url, {"chain_id": 80002}))
        assert rc == 2 and "is chain 137, not wallet.chain_id 80002" in text
    with pytest.raises(Exception, match="wallet.gas_margin"):
        parse_config({"wallet": {"gas_margin": 0.5}})
    with pytest.raises(Exception, match="wallet.rpc_url"):
        parse_config({"wallet": {"rpc_url": "polygon.example"}})


async def test_the_cli_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_chain() as (ch, url):
        cfgf = tmp_path / "live.toml"
        cfgf.write_text('[executor]\nkind = "clob"\n\n[wallet]\nconfirmations = 1\npoll_interval_s = 0.02\n')
        monkeypatch.setenv("POLYBOT_PRIVATE_KEY", PK)
        monkeypatch.setenv("POLYBOT_RPC_URL", url)
        rc = await anyio.to_thread.run_sync(cli.main, ["wallet", "approve", "--config", str(cfgf), "--yes"])
        out = capsys.readouterr().out
        assert rc == 0 and "every approval is set" in out and ch.sends == len(C.APPROVALS) and PK[2:] not in out
        rc = await anyio.to_thread.run_sync(cli.main, ["wallet", "status", "--config", str(cfgf)])
        assert rc == 0 and "MISSING" not in capsys.readouterr().out
        paper = tmp_path / "paper.toml"
        paper.write_text('[executor]\nkind = "paper"\n')
        rc = await anyio.to_thread.run_sync(cli.main, ["wallet", "status", "--config", str(paper)])
        assert rc == 2 and "has no on-chain wallet" in capsys.readouterr().err


async def test_approve_and_wrap_are_refused_while_a_daemon_runs_on_the_account() -> None:
    """A daemon sends its own transactions (merges, redeems) from the key: two senders would race
    for nonces, so approve and wrap refuse while one holds the account's lock (status and a dry
    run do not need it)."""
    from polybot.instance import InstanceLock

    async with fake_chain() as (ch, url):
        other = tempfile.mkdtemp(prefix="daemon-")
        held = InstanceLock(other, account_id=f"{ADDR}:{ADDR}").acquire()  # the daemon, elsewhere
        try:
            rc, text, _ = await wallet(ch, url, "approve", yes=True)
            assert rc == 2 and "another polybot" in text and ch.sends == 0
            rc, _, _ = await wallet(ch, url, "approve", dry_run=True)
            assert rc == 0 and ch.sends == 0
            rc, _, _ = await wallet(ch, url, "status")
            assert rc in (0, 1)
        finally:
            held.release()
        rc, _, _ = await wallet(ch, url, "approve", yes=True)
        assert rc == 0 and ch.sends > 0
