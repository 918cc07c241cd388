"""Query parameters read case-insensitively (as the real server's ASP.NET binding does), with PI errors."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from starlette.requests import Request

from osipi_dagster.mock.errors import PIError
from osipi_dagster.mock.timeparse import parse_time, zone


class Params:
    """A request's query parameters, names folded to lower case, repeated names kept in order."""

    def __init__(self, pairs: list[tuple[str, str]], now_ns: int, server_tz: str = "UTC") -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key.lower(), []).append(value)
        self.now_ns = now_ns
        self._server_tz = server_tz

    @classmethod
    def of(cls, request: Request) -> Params:
        state = request.app.state.mock
        return cls(request.query_params.multi_items(), state.clock.now_ns(), state.config.server_time_zone)

    def query_key(self, ignore: tuple[str, ...] = ()) -> tuple:
        """Every parameter but those named in ``ignore`` (lower case), as a hashable key for caches."""
        return tuple(
            sorted((name, tuple(values)) for name, values in self._values.items() if name not in ignore)
        )

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_list(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), []))

    def has(self, name: str) -> bool:
        return name.lower() in self._values

    def int(self, name: str, default: int) -> int:
        text = self.get(name)
        if text is None or text == "":
            return default
        try:
            return int(text)
        except ValueError as exc:
            raise PIError(400, f"The value '{text}' is not valid for {name}.") from exc

    def bool(self, name: str, default: bool) -> bool:
        text = self.get(name)
        if text is None or text == "":
            return default
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise PIError(400, f"The value '{text}' is not valid for {name}.")

    def choice(self, name: str, default: str, choices: Mapping[str, str] | list[str]) -> str:
        """A case-insensitive enumeration value, returned in its canonical spelling."""
        text = self.get(name)
        if text is None or text == "":
            return default
        canonical = {c.lower(): c for c in choices}
        if text.lower() not in canonical:
            raise PIError(400, f"The value '{text}' is not valid for {name}.")
        return canonical[text.lower()]

    def time_zone(self) -> ZoneInfo:
        return zone(self.get("timeZone"), self._server_tz)

    def time(self, name: str, default: str) -> int:
        """A PI time string parameter as ns since the epoch (UTC)."""
        return parse_time(self.get(name, default), self.now_ns, self.time_zone())

    def max_count(self, limit: int, default: int = 1000) -> int:
        """``maxCount``: default 1000, 400 above MaxReturnedItemsPerCall or below 1."""
        count = self.int("maxCount", default)
        if count > limit:
            raise PIError(
                400, f"The parameter 'maxCount' ({count}) is greater than the maximum allowed ({limit})."
            )
        if count < 1:
            raise PIError(400, f"The parameter 'maxCount' ({count}) must be greater than 0.")
        return count

    def start_index(self) -> int:
        index = self.int("startIndex", 0)
        if index < 0:
            raise PIError(400, f"The parameter 'startIndex' ({index}) must not be negative.")
        return index
