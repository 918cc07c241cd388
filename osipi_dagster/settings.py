"""Environment settings of the connector, read in one place (documented in docs/CONFIGURATION.md)."""

from __future__ import annotations

import os


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated environment variable as a list of non-empty, stripped items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def overlap_minutes_from_env() -> int:
    """``OSIPI_OVERLAP_MINUTES`` (default 60): how far before its watermark the open day is re-read."""
    value = os.environ.get("OSIPI_OVERLAP_MINUTES", "60").strip()
    if not value.isdigit():
        raise ValueError(f"OSIPI_OVERLAP_MINUTES={value!r} must be a whole number of minutes, e.g. 60.")
    return int(value)


def close_day_hour_from_env() -> int:
    """``OSIPI_CLOSE_DAY_HOUR`` (UTC, default 3): when yesterday is read whole again, late data settled."""
    value = os.environ.get("OSIPI_CLOSE_DAY_HOUR", "3").strip()
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise ValueError(f"OSIPI_CLOSE_DAY_HOUR={value!r} must be an hour from 0 to 23 (UTC), e.g. 3.")
    return int(value)
