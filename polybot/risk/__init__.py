"""The risk chain: ordered validators between ``submit()`` and the executor (see
:mod:`polybot.risk.chain` for the chain's rules, and the validator modules for the checks)."""

from .chain import (
    APPROVE,
    BUILTIN_VALIDATORS,
    LOT,
    Action,
    Decision,
    Exposure,
    PassThrough,
    RiskChain,
    RiskContext,
    TradingStateValidator,
    Validator,
    reject,
    resize,
    worst_case,
)

from . import limits as _limits
from . import market as _market

BUILTIN_VALIDATORS.update(_market.VALIDATORS)
BUILTIN_VALIDATORS.update(_limits.VALIDATORS)

__all__ = [
    "APPROVE", "BUILTIN_VALIDATORS", "LOT", "Action", "Decision", "Exposure", "PassThrough", "RiskChain",
    "RiskContext", "TradingStateValidator", "Validator", "reject", "resize", "worst_case",
]  # fmt: skip
