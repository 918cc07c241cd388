"""``python -m osipi_dagster.mock`` / ``osipi-mock``: serve the mock PI Web API in the foreground.

Every option also comes from a ``MOCK_PI_*`` environment variable (``--help`` lists them); a bad option or
variable exits with status 2 and a message. Once the server listens it prints one line saying where.
"""

from __future__ import annotations

import sys

from osipi_dagster.mock.config import parse_args
from osipi_dagster.mock.server import serve_forever


def main(argv: list[str] | None = None) -> int:
    """Parse the options and serve until interrupted."""
    config = parse_args(argv)
    try:
        return serve_forever(config)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after a clean shutdown: not an error here
        return 0


if __name__ == "__main__":
    sys.exit(main())
