"""Circuit breakers: state, machine, the breaker, its fleet side, replay and the registry."""

from .breaker import CircuitBreaker
from .judge import Judge, default_judge
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
