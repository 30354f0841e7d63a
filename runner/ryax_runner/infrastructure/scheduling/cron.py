"""Cron expressions read with cronsim, in an IANA time zone, due times in UTC.

Across daylight-saving changes (cronsim's rules): a wall time that does not exist (the hour
skipped in spring) fires at the first instant after the gap, once; a wall time that happens
twice (the hour repeated in autumn) fires once, at its first occurrence, except for
expressions that fire every hour or more often, which fire in both hours.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

from ...domain.errors import InvalidInput


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    zone: zoneinfo.ZoneInfo

    def after(self, moment: datetime) -> datetime | None:
        try:
            return next(CronSim(self.expression, moment.astimezone(self.zone))).astimezone(UTC)
        except StopIteration:  # an expression that never matches again (e.g. Feb 30)
            return None


class CronsimCalendar:
    """The `CronCalendar` port: a schedule for an expression, or InvalidInput naming it."""

    def schedule(self, expression: str, timezone: str) -> CronSchedule:
        try:
            zone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(
                "trigger.timezone", f"unknown time zone {timezone!r} (an IANA name such as UTC)"
            ) from exc
        fields = len(expression.split())
        if fields != 5:
            raise InvalidInput(
                "trigger.cron",
                f"{expression!r}: {fields} fields; a cron expression has 5 (minute hour "
                "day-of-month month day-of-week)",
            )
        try:
            CronSim(expression, datetime.now(zone))
        except CronSimError as exc:
            raise InvalidInput("trigger.cron", f"{expression!r}: {exc}") from exc
        return CronSchedule(expression, zone)
