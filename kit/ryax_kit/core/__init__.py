"""Framework-free ports every layer may use: the clock and timers. Standard library only."""

from .clock import AsyncioTimers, Clock, SystemClock, TimerHandle, Timers

__all__ = ["AsyncioTimers", "Clock", "SystemClock", "TimerHandle", "Timers"]
