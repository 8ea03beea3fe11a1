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
from .rolling import Rollover, RollingSpec, _is_list
from .sources import resolve_decoder
from .strategy import convert_params, import_path, load_strategy_class
from .units import SCALE, to_units


def _by_name(group: str, ref: str) -> Any:
    if ":" in ref:
        return import_path(ref)
    for ep in entry_points(group=group):
        if ep.name == ref:
            return ep.load()
    known = ", ".join(sorted(ep.name for ep in entry_points(group=group))) or "none"
    raise LookupError(f"no {group.split('.')[-1][:-1]} named {ref!r} (installed: {known})")


def _price(text: str, where: str, file: str) -> int:
    try:
        v = to_units(str(text))
    except ValueError as exc:
        raise ConfigError(f"{file}: {where}: {exc}") from None
    if not 0 <= v < SCALE:
        raise ConfigError(f"{file}: {where}: must be in [0, 1), got {text!r}")
    return v


def _validator(name: str, params: dict[str, Any], where: str, file: str) -> Validator:
    factory = BUILTIN_VALIDATORS.get(name)
    if factory is None and ":" in name:
        try:
            factory = import_path(name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"{file}: risk.chain: {name!r}: {exc}") from None
    if factory is None:
        raise ConfigError(f"{file}: risk.chain: unknown validator {name!r} (built in: {', '.join(sorted(BUILTIN_VALIDATORS))})")
    try:
        return factory(**params)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: {where}: {exc}") from None


def build_risk(cfg: Config) -> RiskChain:
    """The chain from ``[risk]``: validators in ``chain`` order with ``[risk.validators.<name>]``
    params; a strategy with ``[risk.strategies.<instance>.<name>]`` overrides gets its own
    chain, where the overridden validators are separate instances (their own state, their own
    limits) and the others are shared."""
    file = cfg.source_path or "<config>"
    validators: list[Validator] = []
    for name in cfg.risk.chain:
        params = dict(cfg.risk.validators.get(name, {}))
        validators.append(_validator(name, params, f"risk.validators.{name}", file))
    overrides: dict[str, list[Validator]] = {}
    for strat, table in sorted(cfg.risk.strategies.items()):
        unknown = sorted(set(table) - set(cfg.risk.chain))
        if unknown:
            raise ConfigError(f"{file}: risk.strategies.{strat}: {', '.join(unknown)} not in risk.chain")
        chain: list[Validator] = []
        for name, shared in zip(cfg.risk.chain, validators):
            if name in table:
                params = dict(cfg.risk.validators.get(name, {})) | dict(table[name])
                chain.append(_validator(name, params, f"risk.strategies.{strat}.{name}", file))
            else:
                chain.append(shared)
        overrides[strat] = chain
    return RiskChain(validators, overrides)


def build_executor(cfg: Config, kind: str | None = None, params: dict[str, Any] | None = None,
                   configure: bool = True) -> Executor:  # fmt: skip
    """The configured executor: ``[executor]``, or with ``[executor.venues.<venue>]`` tables a
    :class:`~polybot.execution.router.VenueRouter` of one executor per venue (an explicit
    ``kind`` builds that one executor alone). ``configure=False`` (replay) skips the
    ``configure`` hooks: a live executor then reads no credentials (a journal replays on a
    machine without the keys)."""
    if kind is None and cfg.executor.venues:
        from .execution.router import VenueRouter
        from .venues import check_name

        file = cfg.source_path or "<config>"
        members = {"": _one_executor(cfg, cfg.executor.kind, cfg.executor.params, "executor", configure)}
        for venue, vc in sorted(cfg.executor.venues.items()):
            if not venue or not check_name(venue):
                raise ConfigError(f"{file}: executor.venues.{venue}: a venue is a short lower-case word "
                                  "(the prefix of its market ids, e.g. \"pmus\")")  # fmt: skip
            members[venue] = _one_executor(cfg, vc.kind, vc.params, f"executor.venues.{venue}", configure)
        try:
            return VenueRouter(members)
        except ValueError as exc:
            raise ConfigError(f"{file}: executor.venues: {exc}") from None
    return _one_executor(cfg, kind or cfg.executor.kind, cfg.executor.params if params is None else params,
                         "executor", configure)  # fmt: skip


def _one_executor(cfg: Config, kind: str, params: dict[str, Any], where: str, configure: bool) -> Executor:
    file = cfg.source_path or "<config>"
    try:
        cls = _by_name("polybot.executors", kind)
    except (LookupError, ImportError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{file}: {where}.kind: {exc}") from None
    try:
        ex = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: {where}.params: {exc}") from None
    hook = getattr(ex, "configure", None) if configure else None
    if hook is not None:  # a live executor reads its credentials (env / secrets file)
        hook(cfg)
    return ex  # type: ignore[no-any-return]


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
        settle=cfg.portfolio.settle,
        auto_redeem=cfg.portfolio.auto_redeem,
        flatten_max_slippage=_price(cfg.risk.flatten_max_slippage, "risk.flatten_max_slippage", cfg.source_path or "<config>"),
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
        venues = t.pop("venues", None)
        if venues is not None:
            from .venues import check_name

            if not isinstance(venues, list) or not all(isinstance(v, str) and check_name(v) for v in venues):
                raise ConfigError(f"{file}: strategies.{inst}.venues: expected a list of venue names "
                                  "(\"\" = the default venue, \"pmus\" = markets \"pmus:<slug>\")")  # fmt: skip
            k.venues[inst] = frozenset(venues)
        try:
            cls = load_strategy_class(ref)
        except (LookupError, ImportError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{file}: strategies.{inst}.class: {exc}") from None
        try:
            params = convert_params(cls.Params, t)
        except msgspec.ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, file, f"strategies.{inst}")) from None
        k.add_strategy(cls, inst, params, enabled=enabled)
    if cfg.rolling and (wanted is None or any(r.name in wanted for r in cfg.rolling)):
        k.rolling = Rollover(k, build_rolling(cfg, wanted))
    return k


def build_rolling(cfg: Config, wanted: list[str] | None = None) -> list[RollingSpec]:
    """The ``[[rolling]]`` tables, checked: the class loads and the params convert (with a
    placeholder market), or the start is refused naming the field."""
    file = cfg.source_path or "<config>"
    specs: list[RollingSpec] = []
    seen: set[str] = set()
    for i, r in enumerate(cfg.rolling):
        where = f"rolling[{i}]"
        if wanted is not None and r.name not in wanted:
            continue
        if not r.name or "/" in r.name or r.name in seen or r.name in cfg.strategies:
            raise ConfigError(f"{file}: {where}.name: {r.name!r} must be a unique name without '/', "
                              "not a [strategies] instance")  # fmt: skip
        seen.add(r.name)
        for key in ("lead_s", "stop_after_s"):
            if not getattr(r, key) >= 0:
                raise ConfigError(f"{file}: {where}.{key}: must be >= 0")
        if r.max_live < 1:
            raise ConfigError(f"{file}: {where}.max_live: must be >= 1")
        try:
            cls = load_strategy_class(r.cls)
        except (LookupError, ImportError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{file}: {where}.class: {exc}") from None
        fields = {f.name: f for f in msgspec.structs.fields(cls.Params)}
        if r.market_param not in fields:
            raise ConfigError(f"{file}: {where}.market_param: {cls.__name__} has no param {r.market_param!r}")
        probe = dict(r.params)
        probe[r.market_param] = ["0x0"] if _is_list(fields[r.market_param].type) else "0x0"
        try:
            convert_params(cls.Params, probe)
        except msgspec.ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, file, f"{where}.params")) from None
        specs.append(RollingSpec(name=r.name, series=r.series, cls=cls, params=dict(r.params),
                                 market_param=r.market_param, lead_s=r.lead_s, stop_after_s=r.stop_after_s,
                                 redeem=r.redeem, max_live=r.max_live, enabled=r.enabled))  # fmt: skip
    return specs
