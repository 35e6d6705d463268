"""Burn-protocol (seed 004) TCP listener for legacy burners, displays and command frontends."""

from coordinator.burnlistener.auth import (
    Authorize,
    Grant,
    Refused,
    chain,
    credential_authorizer,
    token_authorizer,
)
from coordinator.burnlistener.listener import (
    BurnListener,
    LoopTicker,
    Ticker,
    start_burn_listener,
)

__all__ = [
    "Authorize",
    "BurnListener",
    "Grant",
    "LoopTicker",
    "Refused",
    "Ticker",
    "chain",
    "credential_authorizer",
    "start_burn_listener",
    "token_authorizer",
]
