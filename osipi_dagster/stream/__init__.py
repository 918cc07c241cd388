"""``osipi-stream``: the live stream of PI values into ``bronze.pi_timeseries_live`` (docs/STREAMING.md)."""
