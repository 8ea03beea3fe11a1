"""Building a kernel from config: risk chain, executor, strategies, decoders. Shared by the
daemon, replay and ``polybot state`` so that all three wire exactly the same engine."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

import msgspec

from .config import Config, ConfigError, describe_validation_error
from .execution import Executor
from .journal import JournalWriter
from .integrity import HashDefaults
from .kernel import Kernel
from .risk import BUILTIN_VALIDATORS, RiskChain, Validator
from .sources import resolve_decoder
from .strategy import convert_params, import_path, load_strategy_class


def _by_name(group: str, ref: str) -> Any:
    if ":" in ref:
        return import_path(ref)
    for ep in entry_points(group=group):
        if ep.name == ref:
            return ep.load()
    known = ", ".join(sorted(ep.name for ep in entry_points(group=group))) or "none"
    raise LookupError(f"no {group.split('.')[-1][:-1]} named {ref!r} (installed: {known})")


def build_risk(cfg: Config) -> RiskChain:
    validators: list[Validator] = []
    file = cfg.source_path or "<config>"
    for name in cfg.risk.chain:
        params = dict(cfg.risk.validators.get(name, {}))
        factory = BUILTIN_VALIDATORS.get(name)
        try:
            if factory is None:
                factory = import_path(name) if ":" in name else None
            if factory is None:
                raise ConfigError(f"{file}: risk.chain: unknown validator {name!r} (built in: {', '.join(sorted(BUILTIN_VALIDATORS))})")
            validators.append(factory(**params))
        except TypeError as exc:
            raise ConfigError(f"{file}: risk.validators.{name}: {exc}") from None
    return RiskChain(validators)


def build_executor(cfg: Config, kind: str | None = None, params: dict[str, Any] | None = None) -> Executor:
    file = cfg.source_path or "<config>"
    kind = kind or cfg.executor.kind
    params = cfg.executor.params if params is None else params
    try:
        cls = _by_name("polybot.executors", kind)
    except (LookupError, ImportError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{file}: executor.kind: {exc}") from None
    try:
        return cls(**params)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: executor.params: {exc}") from None


def build_kernel(
    cfg: Config,
    *,
    executor: Executor | None = None,
    journal: JournalWriter | None = None,
    synthesize_timers: bool = False,
    only_strategies: Iterable[str] | None = None,
    verify_books: bool | None = None,
) -> Kernel:
    """A kernel with the config's risk chain and strategies (all, or ``only_strategies``:
    instance names from the config, or registered strategy names run with default params)."""
    k = Kernel(
        executor=executor,
        risk=build_risk(cfg),
        journal=journal,
        synthesize_timers=synthesize_timers,
        client_id_prefix=cfg.engine.client_id_prefix,
        verify_books=cfg.market_data.verify_books if verify_books is None else verify_books,
        hash_defaults=HashDefaults(min_order_size=cfg.market_data.min_order_size, neg_risk=cfg.market_data.neg_risk),
        mark=cfg.portfolio.mark,
    )
    k.set_decoder_resolver(resolve_decoder)
    file = cfg.source_path or "<config>"
    wanted = list(only_strategies) if only_strategies is not None else None
    tables = dict(cfg.strategies)
    if wanted is not None:
        for w in wanted:
            if w not in tables:
                tables[w] = {"class": w}
        tables = {k_: v for k_, v in tables.items() if k_ in wanted}
    for inst, table in tables.items():
        t = dict(table)
        ref = t.pop("class")
        enabled = t.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{file}: strategies.{inst}.enabled: expected bool")
        try:
            cls = load_strategy_class(ref)
        except (LookupError, ImportError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{file}: strategies.{inst}.class: {exc}") from None
        try:
            params = convert_params(cls.Params, t)
        except msgspec.ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, file, f"strategies.{inst}")) from None
        k.add_strategy(cls, inst, params, enabled=enabled)
    return k
