"""A faithful mock of the AVEVA PI Web API (FastAPI): deterministic data, PI's limits, errors and faults.

The client package (``osipi_dagster.pi``) never imports from here, nor this package from it.
"""
