"""Cron calendars for the built-in timer triggers."""
