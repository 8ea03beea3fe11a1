"""``polybot doctor`` (adapters/polymarket/doctor.py) against the local exchange simulator.

Every case runs on loopback against a :class:`SimServer` (L1/L2 auth, /balance-allowance, /time,
/ok, /api/geoblock, the user channel): a good setup passes every check, and each broken setup
gives the right failed check with a fix line. Secrets are planted and must appear nowhere: not
in the report, not in any log record (loguru or stdlib).
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from loguru import logger

from adapters.polymarket.doctor import Check, _parse_time, format_report, run_doctor
from adapters.polymarket.signing import EXCHANGES, Credentials
from adapters.polymarket.sim import SimConfig, SimServer
from polybot.config import Config, Secrets, load_secrets, parse_config

pytestmark = pytest.mark.anyio

PK = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # Hardhat #0 (public)
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # Hardhat #1's address
WRONG_KEY = "5b0f1c2e-dead-4bee-8f00-planted00key1"
WRONG_SECRET = base64.urlsafe_b64encode(b"planted-secret-that-is-32-bytes!").decode()
WRONG_PASS = "planted0passphrase0000000000000000000000000000000000000000000000"
NOT_A_KEY = "0xnot-a-key-planted-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def logs() -> Any:
    """Every log line written while the test runs: loguru (all levels) and stdlib logging."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE", format="{name} {message} {extra}", diagnose=False)

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + " " + str(record.args or ""))

    h = H(level=logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(h)
    root.setLevel(old)
    logger.remove(sink)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def params_for(sim: SimServer, **kw: Any) -> dict[str, Any]:
    base = sim.rest_url
    p: dict[str, Any] = {"rest_url": base, "ws_url": base.replace("http://", "ws://") + "/ws/user",
                         "data_url": base, "geoblock_url": base + "/api/geoblock", "chain_id": 137,
                         "signature_type": "eoa", "funder": "", "dry_run": False, "heartbeat_s": 5.0,
                         "request_timeout_s": 2.0}  # fmt: skip
    p.update(kw)
    return p


def config(params: dict[str, Any], secrets_file: Path | None = None) -> Config:
    data: dict[str, Any] = {"executor": {"kind": "clob", "params": params}}
    if secrets_file is not None:
        data["secrets"] = {"file": str(secrets_file)}
    return parse_config(data, "doctor-test.toml")


async def create_api_key(sim: SimServer) -> dict[str, str]:
    """What a user does once: POST /auth/api-key with L1 headers; the sim then knows the key."""
    creds = Credentials(PK)
    async with aiohttp.ClientSession() as s, s.post(sim.rest_url + "/auth/api-key", headers=creds.l1_headers()) as r:
        assert r.status == 200
        return dict(await r.json())


def secrets_file(tmp_path: Path, values: dict[str, str], mode: int = 0o600) -> Path:
    f = tmp_path / "secrets.toml"
    f.write_text("".join(f'{k} = "{v}"\n' for k, v in values.items()))
    os.chmod(f, mode)
    return f


def by_name(checks: list[Check]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for c in checks:
        assert c.name not in out, f"duplicate check {c.name}"
        out[c.name] = c
    return out


def assert_no_secrets(text: str, logs: list[str], *planted: str) -> None:
    blob = text + "\n".join(logs)
    for s in planted:
        for needle in {s, s.removeprefix("0x")}:
            assert needle not in blob, "a secret leaked into the report or the logs"


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if c.ok is False]


async def doctor(cfg: Config, secrets: Secrets) -> tuple[list[Check], str]:
    checks = await run_doctor(cfg, secrets, dict(cfg.executor.params))
    report = format_report(checks)
    for c in checks:  # the report's contract: fixes for every failure, plain one-line details
        assert c.detail and "\n" not in c.detail and "Traceback" not in c.detail
        if c.ok is False:
            assert c.fix, f"{c.name}: a failed check needs a fix"
    return checks, report


# ---------------------------------------------------------------------------------------------
# the good setups


async def test_good_setup_with_stored_credentials_passes_everything(tmp_path: Path, logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        api = await create_api_key(sim)
        f = secrets_file(tmp_path, {"private_key": PK, "api_key": api["apiKey"], "api_secret": api["secret"],
                                    "api_passphrase": api["passphrase"]})  # fmt: skip
        cfg = config(params_for(sim), f)
        checks, report = await doctor(cfg, load_secrets(cfg, env={}))
    assert failed(checks) == [] and all(c.ok for c in checks), report
    c = by_name(checks)
    assert list(c) == ["config", "secrets file", "private key", "wallet", "rest", "user websocket", "data api",
                       "clock", "geoblock", "api credentials", "balance", "allowance"]  # fmt: skip
    assert ADDRESS in c["private key"].detail
    assert "configured and accepted" in c["api credentials"].detail
    assert "10,000 pUSD" in c["balance"].detail
    assert report.splitlines()[0].startswith("ok   config: ")
    assert report.splitlines()[-1].startswith("doctor: 12 ok, 0 failed, 0 skipped")
    assert_no_secrets(report, logs, PK, api["apiKey"], api["secret"], api["passphrase"])


async def test_missing_api_credentials_are_derived(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        cfg = config(params_for(sim, signature_type="safe", funder=OTHER))
        checks, report = await doctor(cfg, Secrets({"private_key": PK}))
    c = by_name(checks)
    assert failed(checks) == [], report
    assert c["api credentials"].ok and "derivable" in c["api credentials"].detail
    assert c["wallet"].ok and OTHER in c["wallet"].detail and "safe" in c["wallet"].detail
    assert c["balance"].ok and c["allowance"].ok
    assert c["secrets file"].ok is None and report.count("skip ") == 1
    assert_no_secrets(report, logs, PK)


# ---------------------------------------------------------------------------------------------
# credentials


async def test_no_private_key(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({}))
    c = by_name(checks)
    assert failed(checks) == ["private key"], report
    assert "POLYBOT_PRIVATE_KEY" in c["private key"].fix
    assert "FAIL private key: no private key" in report and "\n     fix: export POLYBOT_PRIVATE_KEY" in report
    for name in ("wallet", "api credentials", "balance", "allowance"):
        assert c[name].ok is None, name
    assert "skip wallet: needs a valid private key" in report


async def test_bad_private_key_is_refused_and_never_printed(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({"private_key": NOT_A_KEY}))
    c = by_name(checks)
    assert failed(checks) == ["private key"], report
    assert "not a valid" in c["private key"].detail and "64 hex digits" in c["private key"].fix
    assert_no_secrets(report, logs, NOT_A_KEY)


async def test_wrong_api_credentials_401(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        secrets = Secrets({"private_key": PK, "api_key": WRONG_KEY, "api_secret": WRONG_SECRET, "api_passphrase": WRONG_PASS})
        checks, report = await doctor(config(params_for(sim)), secrets)
    c = by_name(checks)
    assert failed(checks) == ["api credentials"], report
    assert "401" in c["api credentials"].detail
    assert "does not belong to this wallet" in c["api credentials"].detail and ADDRESS in c["api credentials"].detail
    assert "derive again" in c["api credentials"].fix and "/auth/derive-api-key" in c["api credentials"].fix
    assert c["balance"].ok  # checked with the wallet's own (derived) credentials
    assert_no_secrets(report, logs, PK, WRONG_KEY, WRONG_SECRET, WRONG_PASS)


async def test_incomplete_api_credentials(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({"private_key": PK, "api_key": WRONG_KEY}))
    c = by_name(checks)
    assert failed(checks) == ["api credentials"], report
    assert "api_secret, api_passphrase missing" in c["api credentials"].detail
    assert_no_secrets(report, logs, PK, WRONG_KEY)


# ---------------------------------------------------------------------------------------------
# wallet / signature type / config


async def test_eoa_with_foreign_funder(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        checks, report = await doctor(config(params_for(sim, funder=OTHER)), Secrets({"private_key": PK}))
    c = by_name(checks)
    assert failed(checks) == ["wallet"], report
    assert OTHER in c["wallet"].detail and ADDRESS in c["wallet"].detail
    fix = c["wallet"].fix
    assert "email/Magic login = proxy" in fix and "browser wallet" in fix and "= safe" in fix and "poly_1271" in fix
    assert 'funder = ""' in fix


async def test_safe_without_funder(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        checks, report = await doctor(config(params_for(sim, signature_type="safe")), Secrets({"private_key": PK}))
    c = by_name(checks)
    assert set(failed(checks)) == {"config", "wallet"}, report
    assert "funder: required with signature_type safe" in c["config"].detail
    assert "needs a funder" in c["wallet"].detail and "set funder" in c["wallet"].fix


async def test_proxy_with_the_signer_as_funder(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        checks, report = await doctor(config(params_for(sim, signature_type="proxy", funder=ADDRESS)), Secrets({"private_key": PK}))
    c = by_name(checks)
    assert failed(checks) == ["wallet"], report
    assert "EOA setup" in c["wallet"].detail and 'signature_type = "eoa"' in c["wallet"].fix


async def test_config_problems_are_named(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        p = params_for(sim, signature_type="metamask", chain_id=1, funder="0x1234", private_key=PK, heartbeat_s="5")
        checks, report = await doctor(config(p), Secrets({"private_key": PK}))
    c = by_name(checks)["config"]
    assert c.ok is False
    for text in ("unknown key private_key", "signature_type: 'metamask'", "chain_id: 1 is not a known chain",
                 "funder: '0x1234' is not a 0x address", "heartbeat_s"):  # fmt: skip
        assert text in c.detail, text
    assert "chmod" not in c.fix and "email/Magic login = proxy" in c.fix
    assert_no_secrets(report, logs, PK)  # a key pasted into the params is not echoed either


# ---------------------------------------------------------------------------------------------
# venue state: geoblock, balance, allowance, clock


async def test_geoblocked(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False, geoblocked=True)) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({"private_key": PK}))
    c = by_name(checks)["geoblock"]
    assert failed(checks) == ["geoblock"], report
    assert "XX" in c.detail and "Polymarket does not accept orders from this location" in c.detail


async def test_zero_allowance_names_the_exchanges(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False, allowance="0")) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({"private_key": PK}))
    c = by_name(checks)["allowance"]
    assert failed(checks) == ["allowance"], report
    for addr in EXCHANGES[137]:
        assert addr in c.detail and addr in c.fix
    assert "approve" in c.fix


async def test_zero_balance(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False, cash="0")) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({"private_key": PK}))
    c = by_name(checks)["balance"]
    assert failed(checks) == ["balance"], report
    assert "is 0" in c.detail and "deposit" in c.fix and "wrap USDC.e into pUSD" in c.fix


@pytest.mark.parametrize(("offset_s", "ok", "text"), [(12, False, "ahead of"), (-8, False, "behind"), (3.2, True, "warning")])
async def test_clock_skew(offset_s: float, ok: bool, text: str, logs: list[str]) -> None:
    skewed = lambda: time.time_ns() - int(offset_s * 1e9)  # noqa: E731 - the venue's clock
    async with SimServer(SimConfig(autostart=False, clock=skewed)) as sim:
        checks, report = await doctor(config(params_for(sim)), Secrets({}))
    c = by_name(checks)["clock"]
    assert c.ok is ok and text in c.detail, report
    if not ok:
        assert "NTP" in c.fix
    else:
        assert "NTP" in c.detail


def test_parse_time() -> None:
    assert _parse_time("1790000000") == 1790000000
    assert _parse_time("1790000000.5\n") == 1790000000.5
    assert _parse_time('"1790000000"') == 1790000000
    assert _parse_time("1790000000123") == 1790000000.123
    assert _parse_time("OK") is None and _parse_time("true") is None


# ---------------------------------------------------------------------------------------------
# network and secrets file


async def test_unreachable_rest_url(logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        dead = f"http://127.0.0.1:{closed_port()}"
        checks, report = await doctor(config(params_for(sim, rest_url=dead)), Secrets({"private_key": PK}))
    c = by_name(checks)
    assert failed(checks) == ["rest"], report
    assert f"GET {dead}/ok" in c["rest"].detail and "cannot connect" in c["rest"].detail
    assert "rest_url" in c["rest"].fix
    for name in ("clock", "api credentials", "balance", "allowance"):
        assert c[name].ok is None and "not reachable" in c[name].detail
    assert c["user websocket"].ok and c["geoblock"].ok  # the other services are still checked


async def test_everything_unreachable_never_raises(logs: list[str]) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    p = {"rest_url": f"http://{dead}", "ws_url": f"ws://{dead}/ws/user", "data_url": f"http://{dead}",
         "geoblock_url": f"http://{dead}/api/geoblock", "request_timeout_s": 1.0}  # fmt: skip
    checks, report = await doctor(config(p), Secrets({"private_key": PK}))
    assert set(failed(checks)) == {"rest", "user websocket", "data api", "geoblock"}, report
    assert "Traceback" not in report and report.count("fix: ") == 4


async def test_world_readable_secrets_file(tmp_path: Path, logs: list[str]) -> None:
    async with SimServer(SimConfig(autostart=False)) as sim:
        f = secrets_file(tmp_path, {"private_key": PK}, mode=0o644)
        cfg = config(params_for(sim), f)
        checks, report = await doctor(cfg, Secrets({"private_key": PK}))  # e.g. the key also in the environment
        c = by_name(checks)["secrets file"]
        assert failed(checks) == ["secrets file"], report
        assert "group and others" in c.detail and "0644" in c.detail
        assert c.fix == f"chmod 600 {f}"
        assert_no_secrets(report, logs, PK)

        os.chmod(f, 0o640)  # group only; and no key anywhere else: the key check says why
        checks, report = await doctor(cfg, Secrets({}))
        c = by_name(checks)
        assert failed(checks) == ["secrets file", "private key"], report
        assert "group (mode 0640)" in c["secrets file"].detail
        assert "readable by other users" in c["private key"].detail


# ---------------------------------------------------------------------------------------------
# the command


async def test_cli_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, logs: list[str]) -> None:  # fmt: skip
    from polybot.cli import main

    async with SimServer(SimConfig(autostart=False)) as sim:
        def write_cfg(name: str, **kw: Any) -> str:
            p = params_for(sim, **kw)
            body = "[executor]\nkind = \"clob\"\n[executor.params]\n" + "".join(
                f"{k} = {v!r}\n".replace("'", '"').replace("False", "false") for k, v in p.items())
            (tmp_path / name).write_text(body)
            return str(tmp_path / name)

        monkeypatch.setenv("POLYBOT_PRIVATE_KEY", PK)
        good = write_cfg("good.toml")
        assert await anyio.to_thread.run_sync(main, ["doctor", "--config", good]) == 0
        out = capsys.readouterr().out
        assert "ok   private key: valid (from POLYBOT_PRIVATE_KEY; signer address" in out and "FAIL" not in out

        bad = write_cfg("bad.toml", funder=OTHER)
        assert await anyio.to_thread.run_sync(main, ["doctor", "--config", bad]) == 1
        out = capsys.readouterr().out
        assert "FAIL wallet: " in out and "\n     fix: " in out

        # an unreadable secrets file: reported as a failed check, the environment's key still used
        broken = tmp_path / "broken-secrets.toml"
        broken.write_text("private_key = [\n")
        os.chmod(broken, 0o600)
        (tmp_path / "broken.toml").write_text(Path(good).read_text() + f'[secrets]\nfile = "{broken}"\n')
        assert await anyio.to_thread.run_sync(main, ["doctor", "--config", str(tmp_path / "broken.toml")]) == 1
        out = capsys.readouterr().out
        assert "FAIL secrets file: " in out and "not valid TOML" in out and "ok   private key" in out

    paper = tmp_path / "paper.toml"
    paper.write_text('[executor]\nkind = "paper"\n')
    assert await anyio.to_thread.run_sync(main, ["doctor", "--config", str(paper)]) == 0
    assert "no preflight checks" in capsys.readouterr().out
    assert_no_secrets("", logs, PK)
