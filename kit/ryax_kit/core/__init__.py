"""Framework-free parts every layer may use: the clock and timers, filestore keys. Standard
library only."""

from .clock import AsyncioTimers, Clock, SystemClock, TimerHandle, Timers
from .keys import InvalidKey, check_key, encode_segment

__all__ = [
    "AsyncioTimers",
    "Clock",
    "InvalidKey",
    "SystemClock",
    "TimerHandle",
    "Timers",
    "check_key",
    "encode_segment",
]
