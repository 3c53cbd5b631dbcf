"""Circuit breakers: state, machine, the breaker, replay and the registry."""

from .breaker import CircuitBreaker, Judge, default_judge
from .registry import BreakerRegistry
from .state import BreakerState, Outcome

__all__ = [
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "Judge",
    "Outcome",
    "default_judge",
]
