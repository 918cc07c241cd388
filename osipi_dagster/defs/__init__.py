"""Dagster wiring only, loaded by ``osipi_dagster.definitions`` with Dagster's folder loading.

* ``embedded/defs.yaml``: the default PI server (a ``PIServer`` component configured by ``OSIPI_*``).
* ``lakehouse.py``: the lakehouse every PI server writes to.
* ``pi_server/``: the ``PIServer`` component and the assets, partitions, schedules it builds per server.
* ``resources.py``: the PI Web API and Delta lakehouse resources.

Add a PI server with a folder holding its ``defs.yaml``; add a check, sensor or schedule with
``dg scaffold defs ...``, which puts the file here, where it loads.
"""
