"""Dagster assets, one module per asset family. Bodies stay thin: read the partition, call ``ingest``,
return ``dg.MaterializeResult`` with rich metadata.

Asset modules do not use ``from __future__ import annotations``: Dagster reads the annotations of asset
functions (config classes, resources) as real types when it builds the definitions.
"""
