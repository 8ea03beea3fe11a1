"""Deployment files (config/deploy/), checked offline: the systemd unit's key settings, the
Dockerfile and its .dockerignore, and the Dockerfile's HEALTHCHECK command (python -m
polybot.healthcheck) run against a real daemon's API: exit 0 while healthy, 1 once trading is
halted and when nothing answers."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec

from polybot.cli import build_parser, cmd_run
from polybot.config import parse_config
from polybot.daemon import Daemon

from proc_helpers import DIP_TOML, REPO, demo_daemon_toml

DEPLOY = REPO / "config" / "deploy"


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"),
                                   empty_lines_in_values=False)  # fmt: skip
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    cp.read_string((DEPLOY / "polybot.service").read_text())
    return cp


def test_systemd_unit_runs_polybot_unattended_and_hardened() -> None:
    cp = unit()
    s = cp["Service"]
    assert s["User"] and s["User"] != "root"
    exec_start = shlex.split(s["ExecStart"])
    assert exec_start[0] == "/opt/polybot/.venv/bin/polybot"
    a = build_parser().parse_args(exec_start[1:])
    assert a.fn is cmd_run and a.config == "/etc/polybot/live.toml" and not a.dry_run
    assert s["EnvironmentFile"] == "/etc/polybot/secrets.env"
    # SIGTERM is the clean shutdown; it must have time to cancel, drain (up to 10 s) and snapshot
    assert s["KillSignal"] == "SIGTERM" and s["KillMode"] == "mixed"
    assert int(s["TimeoutStopSec"]) >= 30
    assert s["Restart"] == "on-failure" and int(s["RestartSec"]) >= 1
    assert s["RestartPreventExitStatus"] == "2"  # polybot's exit status for a refused start
    assert s["NoNewPrivileges"] == "yes" and s["ProtectSystem"] == "strict"
    assert s["ProtectHome"] == "yes" and s["PrivateTmp"] == "yes"
    state = "/var/lib/" + s["StateDirectory"]
    assert s["WorkingDirectory"] == state and s["ReadWritePaths"] == state
    env = dict(shlex.split(v)[0].split("=", 1) for k, v in _all(cp, "Service", "Environment"))
    assert env["POLYBOT_LOCK_DIR"].startswith(state + "/")  # writable under ProtectSystem=strict
    assert cp["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in cp["Unit"]["After"]


def _all(cp: configparser.ConfigParser, section: str, key: str) -> list[tuple[str, str]]:
    """Every value of a repeated key (configparser keeps the last): read the section's lines."""
    text = (DEPLOY / "polybot.service").read_text()
    body = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
    return [(key, ln.split("=", 1)[1]) for ln in body.splitlines() if ln.startswith(key + "=")]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, cur = [], ""
    for ln in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not cur and (not ln.strip() or ln.lstrip().startswith("#")):
            continue
        cur += ln.rstrip("\\").strip() + " " if ln.endswith("\\") else ln.strip()
        if not ln.endswith("\\"):
            ins, _, rest = cur.partition(" ")
            lines.append((ins.upper(), rest.strip()))
            cur = ""
    return lines


def healthcheck_argv(port: int) -> list[str]:
    """The Dockerfile's HEALTHCHECK command as this machine runs it: this python (polybot is
    installed in it, as in the image), the test daemon's port."""
    hc = [rest for ins, rest in dockerfile() if ins == "HEALTHCHECK"]
    assert len(hc) == 1
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc[0])
    assert m, hc[0]
    argv = json.loads(m.group(1))
    assert argv[0] == "python"
    assert argv[1:3] == ["-m", "polybot.healthcheck"]  # the installed package's probe
    out = [sys.executable] + argv[1:]
    assert any(a == "http://127.0.0.1:8321/critical" for a in out)  # loopback: the probe runs in the container
    return [a.replace(":8321/", f":{port}/") for a in out]


def test_dockerfile_builds_a_non_root_image_with_a_health_check() -> None:
    ins = dockerfile()
    get = lambda name: [rest for i, rest in ins if i == name]  # noqa: E731
    assert get("FROM") == ["python:3.11-slim"]
    assert any('pip install ".[live]"' in r for r in get("RUN"))
    user = get("USER")
    assert user and user[-1] not in ("root", "0")
    assert get("STOPSIGNAL") == ["SIGTERM"]
    assert get("VOLUME") == ['["/data"]']
    cmd = json.loads(get("CMD")[-1])
    assert cmd[:2] == ["polybot", "run"]
    assert build_parser().parse_args(cmd[1:]).fn is cmd_run
    assert get("WORKDIR")[-1] == "/opt/polybot" and get("COPY") == [". ."]  # built from the repository's top
    assert "--start-period" in get("HEALTHCHECK")[0]
    # the image has no curl: the probe is python's urllib
    assert "curl" not in get("HEALTHCHECK")[0]


def test_dockerignore_keeps_what_the_image_needs() -> None:
    # BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile given with -f
    rules = [ln.strip() for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]  # fmt: skip
    for excluded in (".git", ".venv", "var", "**/__pycache__", ".pytest_cache"):
        assert excluded in rules
    for kept in ("recordings", "config", "polybot", "adapters", "strategies", "pyproject.toml", "README.md"):
        assert not any(r.rstrip("/") == kept or r.startswith(kept + "/") for r in rules if not r.startswith("!")), kept


def daemon_config(tmp_path: Path) -> Any:
    text = demo_daemon_toml(tmp_path / "data", extra=f"""
[api]
enabled = true
port = 0
{DIP_TOML}
""")
    return parse_config(msgspec.toml.decode(text.encode()), str(tmp_path / "health.toml"))


def test_healthcheck_exits_0_when_healthy_and_1_when_halted_or_down(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path)
    results: dict[str, Any] = {}

    async def probe(*argv: str) -> tuple[int, str]:
        r = await anyio.run_process(list(argv), check=False)
        return r.returncode, r.stdout.decode()

    async def main() -> None:
        d = Daemon(cfg)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d.run)
            with anyio.fail_after(10):
                while d.api is None or not d.api.port:
                    await anyio.sleep(0.02)
            argv = healthcheck_argv(d.api.port)
            results["healthy"] = await probe(*argv)
            # the data dir form: the URL from the running daemon's api.json
            results["by_dir"] = await probe(sys.executable, "-m", "polybot.healthcheck", cfg.engine.data_dir)
            token = (Path(cfg.engine.data_dir) / "api_token").read_text().strip()
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{d.api.port}/api/control/halt", json={"reason": "test"},
                                     headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
                    assert r.status == 200
            results["halted"] = await probe(*argv)
            results["argv"] = argv
            d.request_stop()

    anyio.run(main)
    assert results["healthy"][0] == 0 and results["healthy"][1].startswith("ok ")
    assert results["by_dir"][0] == 0
    assert results["halted"] == (1, "critical (HTTP 503): trading is halted\n")
    code, out = anyio.run(lambda: probe(*results["argv"]))  # the daemon is gone: nothing answers
    assert code == 1 and out.startswith("no answer from http://127.0.0.1:")
