"""The ingestion core: PI Web API -> Delta, called by the Dagster assets (and usable without Dagster).

Each function takes a PI client and lake tables, does one whole job exactly once (idempotent, atomic per
commit), and returns a small result dataclass the caller turns into metadata. No Dagster imports here.
"""
