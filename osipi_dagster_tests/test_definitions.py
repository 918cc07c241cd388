"""The code location built from explicit settings: two PI servers land side by side in one lakehouse.

Two mocks with different seeds stand for two sites. Each server's catalog and one closed-day partition are
materialized through Dagster into one lakehouse; each server's slice must equal an independent read of its
own mock, in its own tables, with nothing of one server in the other's.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import dagster as dg

from osipi_dagster.definitions import build_definitions
from osipi_dagster.defs.pi_server.wiring import ServerWiring
from osipi_dagster.lake import Lakehouse
from osipi_dagster.settings import LakeSettings, PIServerSettings
from osipi_dagster_tests.conftest import TEST_NOW
from osipi_dagster_tests.timeseries_helpers import (
    SECOND_NS,
    assert_same_rows,
    day_start_ns,
    lake_rows,
    shard_web_ids,
    truth,
)

DAY = date(2025, 1, 5)
NOW = datetime.fromisoformat(TEST_NOW.replace("Z", "+00:00"))


def test_two_servers_materialize_into_one_lakehouse_without_collision(make_mock, tmp_path: Path) -> None:
    site_a, site_b = make_mock(tags=40, seed=1), make_mock(tags=30, seed=2, server_name="PISITEB")
    servers = [
        PIServerSettings(base_url=site_a.api, compress=False, tag_shards=2),
        PIServerSettings(name="site_b", base_url=site_b.api, compress=False, tag_shards=2),
    ]
    defs = build_definitions(LakeSettings(root=str(tmp_path)), servers)
    lakes = {server.name: Lakehouse(str(tmp_path), table_prefix=server.table_prefix) for server in servers}

    with dg.instance_for_test() as instance:
        for server in servers:
            key = ServerWiring(server).key
            for assets, partition in (
                ([key("pi_af_hierarchy"), key("pi_af_attributes"), key("pi_points")], None),
                ([key("pi_timeseries")], f"{DAY.isoformat()}|s01"),
            ):
                job = defs.resolve_implicit_job_def_def_for_assets(assets)
                result = job.execute_in_process(
                    instance=instance, asset_selection=assets, partition_key=partition
                )
                assert result.success

    start = day_start_ns(DAY)
    for server, mock in zip(servers, (site_a, site_b), strict=True):
        lake = lakes[server.name]
        web_ids = shard_web_ids(lake, "s01")
        assert web_ids
        assert_same_rows(
            lake_rows(lake.table("bronze.pi_timeseries"), DAY, "s01"),
            truth(mock.api, web_ids, start, start + 86_400 * SECOND_NS),
        )
    assert (
        lakes["default"].table("bronze.pi_timeseries").uri
        != lakes["site_b"].table("bronze.pi_timeseries").uri
    )
    assert (tmp_path / "bronze" / "site_b__pi_timeseries").is_dir()
    assert not set(shard_web_ids(lakes["default"], "s01")) & set(shard_web_ids(lakes["site_b"], "s01"))
