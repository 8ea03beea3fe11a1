"""polybot.config: typed TOML config, errors that name file + key, secrets kept out of sight."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from polybot.config import (
    SECRET_KEYS,
    Config,
    ConfigError,
    Secrets,
    describe_validation_error,
    load_config,
    load_secrets,
    parse_config,
)

PK = "0xdeadbeefcafebabe1234567890abcdef0011223344556677"
API_KEY = "11111111-2222-3333-4444-555555555555"
API_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
PASSPHRASE = "pass-phrase-xyz-987"


def write(tmp_path: Path, text: str, name: str = "polybot.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    p.chmod(0o600)  # a secrets file must not be readable by others (and a config may be 0600 too)
    return p


def error_of(data: dict, file: str = "cfg.toml") -> str:
    with pytest.raises(ConfigError) as ei:
        parse_config(data, file)
    return str(ei.value)


# ------------------------------------------------------------------------------------ parse


def test_defaults() -> None:
    cfg = parse_config({})
    assert isinstance(cfg, Config)
    e = cfg.engine
    assert (e.data_dir, e.journal, e.journal_file, e.fsync) == ("var", True, "journal.jsonl", "orders")
    assert (e.flush_interval_ms, e.snapshot_every, e.queue_size) == (200, 5000, 10_000)
    assert (e.on_shutdown, e.client_id_prefix, e.recover) == ("cancel", "pb", True)
    assert (cfg.logging.level, cfg.logging.json, cfg.logging.file, cfg.logging.status_interval_s) == ("INFO", False, "", 5.0)
    assert (cfg.executor.kind, cfg.executor.params) == ("paper", {})
    assert (cfg.risk.chain, cfg.risk.validators) == (["trading_state"], {})
    assert cfg.feeds == [] and cfg.strategies == {}
    assert cfg.replay.bare_source == "polymarket.market"
    assert cfg.secrets.file == ""
    assert cfg.source_path == "<config>"


def test_defaults_are_not_shared_between_configs() -> None:
    a, b = parse_config({}), parse_config({})
    a.risk.chain.append("x")
    a.executor.params["k"] = 1
    assert b.risk.chain == ["trading_state"] and b.executor.params == {}
    assert parse_config({}).risk.chain == ["trading_state"]


def test_full_config_from_file(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[engine]
data_dir = "/tmp/pb"
fsync = "always"
queue_size = 5
client_id_prefix = "bot_1"

[logging]
level = "DEBUG"
json = true
status_interval_s = 0

[executor]
kind = "loopback"
params = { latency_ms = 5 }

[risk]
chain = ["trading_state", "max_notional"]
validators = { max_notional = { limit = "100" } }

[[feeds]]
kind = "polymarket.market"
params = { assets = ["a", "b"] }

[[feeds]]
kind = "mod.sub:Feed"
name = "second"

[strategies.dutch-1]
class = "dutch_book"
enabled = true
max_cost = "0.98"

[replay]
bare_source = "polymarket.user"
""",
    )
    cfg = load_config(p)
    assert cfg.source_path == str(p)
    assert (cfg.engine.data_dir, cfg.engine.fsync, cfg.engine.queue_size) == ("/tmp/pb", "always", 5)
    assert cfg.engine.client_id_prefix == "bot_1"
    assert (cfg.logging.level, cfg.logging.json, cfg.logging.status_interval_s) == ("DEBUG", True, 0.0)
    assert cfg.executor.kind == "loopback" and cfg.executor.params == {"latency_ms": 5}
    assert cfg.risk.chain == ["trading_state", "max_notional"]
    assert cfg.risk.validators == {"max_notional": {"limit": "100"}}
    assert [(f.kind, f.name, f.params) for f in cfg.feeds] == [
        ("polymarket.market", "", {"assets": ["a", "b"]}),
        ("mod.sub:Feed", "second", {}),
    ]
    assert cfg.strategies == {"dutch-1": {"class": "dutch_book", "enabled": True, "max_cost": "0.98"}}
    assert cfg.replay.bare_source == "polymarket.user"
    # untouched sections keep their defaults
    assert cfg.engine.snapshot_every == 5000


def test_unknown_top_level_key() -> None:
    msg = error_of({"engine": {}, "bogus": 1})
    assert "cfg.toml" in msg and "bogus" in msg and "unknown key" in msg


def test_unknown_nested_key_names_file_and_path(tmp_path: Path) -> None:
    p = write(tmp_path, "[engine]\nqueue_size = 10\nfoo = 1\n", name="my-conf.toml")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "my-conf.toml" in msg and "engine.foo" in msg and "unknown key" in msg
    assert isinstance(ei.value, ValueError)


def test_unknown_key_deeper_and_in_array_of_tables() -> None:
    assert "logging.colour" in error_of({"logging": {"colour": True}})
    msg = error_of({"feeds": [{"kind": "x"}, {"kind": "y", "zz": 1}]})
    assert "feeds[1].zz" in msg and "unknown key" in msg


def test_source_path_is_not_a_config_key() -> None:
    assert "source_path" in error_of({"source_path": "/etc/passwd"})


def test_wrong_type_names_key_and_type(tmp_path: Path) -> None:
    p = write(tmp_path, '[engine]\nqueue_size = "x"\n', name="typed.toml")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "typed.toml" in msg and "engine.queue_size" in msg and "int" in msg and "str" in msg
    assert "`" not in msg  # msgspec's backticks are cleaned up


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"engine": {"queue_size": True}}, ("engine.queue_size", "int")),
        ({"engine": {"journal": "yes"}}, ("engine.journal", "bool")),
        ({"engine": {"fsync": "sometimes"}}, ("engine.fsync", "sometimes")),
        ({"logging": {"level": "LOUD"}}, ("logging.level",)),
        ({"risk": {"chain": "trading_state"}}, ("risk.chain", "array")),
        ({"engine": []}, ("engine", "object")),
        ({"feeds": [{}]}, ("feeds[0].kind", "required")),
        ({"feeds": {"kind": "x"}}, ("feeds", "array")),
    ],
)
def test_wrong_values_name_the_key(data: dict, needles: tuple[str, ...]) -> None:
    msg = error_of(data)
    assert msg.startswith("cfg.toml: ")
    for n in needles:
        assert n in msg, (n, msg)


@pytest.mark.parametrize(
    ("engine", "needle"),
    [
        ({"queue_size": 0}, "engine.queue_size"),
        ({"queue_size": -3}, "engine.queue_size"),
        ({"snapshot_every": 0}, "engine.snapshot_every"),
        ({"client_id_prefix": ""}, "engine.client_id_prefix"),
        ({"client_id_prefix": "has space"}, "engine.client_id_prefix"),
        ({"client_id_prefix": "x" * 17}, "engine.client_id_prefix"),
    ],
)
def test_value_checks(engine: dict, needle: str) -> None:
    assert needle in error_of({"engine": engine})


def test_strategy_table_without_class() -> None:
    msg = error_of({"strategies": {"mine": {"enabled": True}}})
    assert "cfg.toml" in msg and "strategies.mine.class" in msg


def test_strategy_table_without_class_from_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[strategies.alpha]\nenabled = false\n")
    with pytest.raises(ConfigError, match=r"polybot\.toml: strategies\.alpha\.class"):
        load_config(p)


def test_strategy_that_is_not_a_table_is_named() -> None:
    msg = error_of({"strategies": {"beta": 3}})
    assert "strategies.beta" in msg


def test_strategy_instance_name_checked() -> None:
    msg = error_of({"strategies": {"bad name!": {"class": "x"}}})
    assert "strategies.bad name!" in msg


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[engine\nqueue_size = = 3\n", name="broken.toml")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert "broken.toml" in str(ei.value) and "TOML" in str(ei.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_describe_validation_error_shapes() -> None:
    class S(msgspec.Struct, forbid_unknown_fields=True):
        a: int

    for data, expected in [
        ({"a": "x"}, "F: a: expected int, got str"),
        ({"a": 1, "b": 2}, "F: b: unknown key"),
        ({}, "F: a: required key is missing"),
        ([], "F: (top level): expected object, got array"),
    ]:
        with pytest.raises(msgspec.ValidationError) as ei:
            msgspec.convert(data, S)
        assert describe_validation_error(ei.value, "F") == expected
    with pytest.raises(msgspec.ValidationError) as ei:
        msgspec.convert({"a": "x"}, S)
    assert describe_validation_error(ei.value, "F", prefix="p.q") == "F: p.q.a: expected int, got str"


# ------------------------------------------------------------------------------------ secrets


def test_secrets_from_env() -> None:
    env = {
        "POLYBOT_PRIVATE_KEY": PK, "POLYBOT_API_KEY": API_KEY,
        "POLYBOT_API_SECRET": API_SECRET, "POLYBOT_API_PASSPHRASE": PASSPHRASE,
        "POLYBOT_ODDS_API_KEY": "odds-key", "POLYBOT_API_TOKEN": "operator-token-0123456789", "UNRELATED": "x",
    }  # fmt: skip
    # every other secret key (RPC URL, relayer key, alert sinks) comes from POLYBOT_<KEY> the same way
    env |= {f"POLYBOT_{k.upper()}": f"value-of-{k}" for k in SECRET_KEYS if f"POLYBOT_{k.upper()}" not in env}
    s = load_secrets(parse_config({}), env)
    assert s.get("odds_api_key") == "odds-key"
    assert s.get("api_token") == "operator-token-0123456789"
    assert s.get("private_key") == PK and s.get("api_key") == API_KEY
    assert s.get("api_secret") == API_SECRET and s.get("api_passphrase") == PASSPHRASE
    assert all(k in s for k in SECRET_KEYS)
    assert "UNRELATED" not in s and s.get("unrelated") is None


def test_secrets_empty_env_values_are_absent() -> None:
    s = load_secrets(parse_config({}), {"POLYBOT_PRIVATE_KEY": ""})
    assert "private_key" not in s and s.get("private_key") is None


def test_secrets_default_env_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in SECRET_KEYS:
        monkeypatch.delenv(f"POLYBOT_{k.upper()}", raising=False)
    monkeypatch.setenv("POLYBOT_API_KEY", API_KEY)
    s = load_secrets(parse_config({}))
    assert s.get("api_key") == API_KEY and "private_key" not in s


def test_secrets_from_file_and_env_overrides(tmp_path: Path) -> None:
    f = write(tmp_path, f'private_key = "{PK}"\napi_key = "from-file"\napi_secret = "{API_SECRET}"\n', "secrets.toml")
    cfg = parse_config({"secrets": {"file": str(f)}})
    s = load_secrets(cfg, {})
    assert s.get("private_key") == PK and s.get("api_key") == "from-file" and s.get("api_secret") == API_SECRET
    assert "api_passphrase" not in s
    s = load_secrets(cfg, {"POLYBOT_API_KEY": API_KEY})
    assert s.get("api_key") == API_KEY and s.get("private_key") == PK


def test_secrets_file_with_home_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, f'api_passphrase = "{PASSPHRASE}"\n', "s.toml")
    s = load_secrets(parse_config({"secrets": {"file": "~/s.toml"}}), {})
    assert s.get("api_passphrase") == PASSPHRASE


def test_repr_never_shows_secrets(tmp_path: Path) -> None:
    env = {"POLYBOT_PRIVATE_KEY": PK, "POLYBOT_API_KEY": API_KEY,
           "POLYBOT_API_SECRET": API_SECRET, "POLYBOT_API_PASSPHRASE": PASSPHRASE}  # fmt: skip
    s = load_secrets(parse_config({}), env)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), repr({"s": s})):
        for secret in (PK, API_KEY, API_SECRET, PASSPHRASE):
            assert secret not in text
            assert secret[:8] not in text
    assert "private_key=***" in repr(s)
    assert not hasattr(s, "__dict__")
    assert repr(Secrets({})) == "Secrets()"


def test_a_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    f = write(tmp_path, f'private_key = "{PK}"\n', "open-secrets.toml")
    for mode in (0o644, 0o640, 0o604):
        f.chmod(mode)
        with pytest.raises(ConfigError) as ei:
            load_secrets(parse_config({"secrets": {"file": str(f)}}), {})
        assert "chmod 600" in str(ei.value) and "open-secrets.toml" in str(ei.value) and PK not in str(ei.value)
    f.chmod(0o400)
    assert load_secrets(parse_config({"secrets": {"file": str(f)}}), {}).get("private_key") == PK


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('private_key = "x"\nmnemonic = "abandon abandon"\n', "mnemonic"),
        ("api_key = 12345\n", "api_key"),
        ("[api_key]\nvalue = 'x'\n", "api_key"),
        ("not toml at all ===\n", "not valid TOML"),
    ],
)
def test_bad_secrets_file_refused(tmp_path: Path, text: str, needle: str) -> None:
    f = write(tmp_path, text, "bad-secrets.toml")
    with pytest.raises(ConfigError) as ei:
        load_secrets(parse_config({"secrets": {"file": str(f)}}), {})
    msg = str(ei.value)
    assert "bad-secrets.toml" in msg and needle in msg
    assert "abandon" not in msg  # the value itself is not echoed


def test_missing_secrets_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read secrets file"):
        load_secrets(parse_config({"secrets": {"file": str(tmp_path / "none.toml")}}), {})
