"""Arrow schemas and layout of every Delta table the connector writes.

Conventions shared by all tables:

* Timestamps are ``timestamp('us', 'UTC')``: Delta's only timestamp type is microseconds with a zone.
* ``ingested_at`` is the UTC time of the commit that wrote the row (the same value for every row of a
  write), so a reader can tell which run produced a row.
* ``partition_date`` is a Delta ``date``: delta-rs and Spark prune on it, and its partition folder name
  (``partition_date=2025-01-06``) is plain ASCII.

``bronze.pi_timeseries`` keeps PI's exact 100 ns ticks in two columns (see ``TIMESERIES``): ``timestamp`` is
the time floored to the microsecond, for SQL users and engines, and ``timestamp_ns`` is the exact time in
nanoseconds since the Unix epoch, the value the writers' predicates compare against and the value
:func:`osipi_dagster.lake.timeseries.read_slice` turns back into an exact ``timestamp('ns', 'UTC')``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from osipi_dagster.contract import RECORDED_SCHEMA

UTC_US = pa.timestamp("us", tz="UTC")
UTC_NS = pa.timestamp("ns", tz="UTC")
STRING_LIST = pa.list_(pa.string())

# One row per recorded value, as the PI client yields them; a point may hold several values at one
# timestamp, all kept as distinct rows. The time-series table adds its columns to these.

INGESTED_AT = pa.field("ingested_at", UTC_US, nullable=False)
PARTITION_DATE = pa.field("partition_date", pa.date32(), nullable=False)
TAG_SHARD = pa.field("tag_shard", pa.string(), nullable=False)


@dataclass(frozen=True)
class TableSpec:
    """What a table looks like in Delta: its columns, partition columns and logical key."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    key: tuple[str, ...]
    description: str

    @property
    def column_names(self) -> list[str]:
        return self.schema.names


TIMESERIES = TableSpec(
    name="bronze.pi_timeseries",
    schema=pa.schema(
        [
            RECORDED_SCHEMA.field("web_id"),
            pa.field("timestamp", UTC_US, nullable=False),
            pa.field("timestamp_ns", pa.int64(), nullable=False),
            *(RECORDED_SCHEMA.field(name) for name in RECORDED_SCHEMA.names[2:]),
            PARTITION_DATE,
            TAG_SHARD,
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date", "tag_shard"),
    # No unique key: PI may hold several values of one point at one timestamp, all of them kept.
    key=(),
    description="PI recorded values, one row per value; a (partition_date, tag_shard) slice per run.",
)

WATERMARKS = TableSpec(
    name="checkpoints.pi_watermarks",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            TAG_SHARD,
            # The end of the window read (exclusive), not the point's last value: slow points must not
            # re-read hours on every run.
            pa.field("read_until", UTC_US, nullable=False),
            pa.field("window_start", UTC_US),
            pa.field("values_read", pa.int64(), nullable=False),
            pa.field("run_id", pa.string()),
            pa.field("updated_at", UTC_US, nullable=False),
        ]
    ),
    # Partitioned by shard so the runs of different shards MERGE into disjoint files and never conflict.
    partition_by=("tag_shard",),
    key=("tag_shard", "web_id"),
    description="Per point, the end of the last window read into bronze.pi_timeseries.",
)

EVENT_FRAMES = TableSpec(
    name="bronze.pi_event_frames",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("description", pa.string()),
            pa.field("path", pa.string()),
            pa.field("template_name", pa.string()),
            pa.field("category_names", STRING_LIST),
            pa.field("severity", pa.string()),
            pa.field("start_time", UTC_US, nullable=False),
            # Null while the frame is open. AF's "no end" (AFTime.MaxValue, 9999-12-31) is turned into
            # null on write: it overflows pandas and turns every duration into 8,000 years.
            pa.field("end_time", UTC_US),
            # end_time - start_time in seconds; null while open. Delta has no interval type.
            pa.field("duration_seconds", pa.float64()),
            pa.field("primary_element_web_id", pa.string()),
            pa.field("referenced_element_web_ids", STRING_LIST),
            # The parent frame of a child frame (a batch phase's batch), null for a root frame.
            pa.field("parent_web_id", pa.string()),
            pa.field("can_be_acknowledged", pa.bool_()),
            pa.field("is_acknowledged", pa.bool_()),
            pa.field("acknowledged_by", pa.string()),
            pa.field("acknowledged_date", UTC_US),
            pa.field("attributes", pa.map_(pa.string(), pa.string())),
            # The UTC date of start_time: fixed for the life of a frame, so a frame is never moved.
            PARTITION_DATE,
            INGESTED_AT,
        ]
    ),
    # Not physically partitioned: a few thousand frames a day would make one tiny file per day.
    partition_by=(),
    key=("web_id",),
    description="AF event frames, one row per frame, upserted by WebId as frames open, change and close.",
)

POINTS = TableSpec(
    name="bronze.pi_points",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("point_id", pa.int32()),
            pa.field("name", pa.string(), nullable=False),
            pa.field("path", pa.string()),
            pa.field("descriptor", pa.string()),
            pa.field("point_class", pa.string()),
            pa.field("point_type", pa.string()),
            pa.field("digital_set_name", pa.string()),
            pa.field("engineering_units", pa.string()),
            pa.field("step", pa.bool_()),
            pa.field("future", pa.bool_()),
            pa.field("data_server_web_id", pa.string()),
            pa.field("af_attribute_paths", STRING_LIST),
            TAG_SHARD,
            pa.field("first_seen", UTC_US, nullable=False),
            pa.field("last_seen", UTC_US, nullable=False),
            pa.field("is_deleted", pa.bool_(), nullable=False),
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("web_id",),
    description="The tag catalog: every PI point seen, its shard, and whether it still exists.",
)

AF_HIERARCHY = TableSpec(
    name="bronze.pi_af_hierarchy",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("parent_web_id", pa.string()),
            pa.field("name", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("depth", pa.int32(), nullable=False),
            pa.field("template_name", pa.string()),
            pa.field("category_names", STRING_LIST),
            pa.field("description", pa.string()),
            pa.field("database_web_id", pa.string()),
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("web_id",),
    description="The AF element tree, one row per element, fully refreshed by every run.",
)

AF_ATTRIBUTES = TableSpec(
    name="bronze.pi_af_attributes",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("element_web_id", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("type", pa.string()),
            pa.field("units", pa.string()),
            pa.field("data_reference", pa.string()),
            pa.field("config_string", pa.string()),
            pa.field("point_web_id", pa.string()),
            pa.field("category_names", STRING_LIST),
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("web_id",),
    description="AF attributes of every element, with the PI point each one references.",
)

# What a point's stream updates still owe the lake: a (date) partition of its shard to materialize again,
# because of an event seen at ``since``; ``reread_from`` is the earliest event time of that date.
PENDING_WORK = pa.struct(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("since", UTC_US, nullable=False),
        pa.field("reread_from", UTC_US, nullable=False),
    ]
)

UPDATE_MARKERS = TableSpec(
    name="checkpoints.pi_update_markers",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            TAG_SHARD,
            # Where the point's next stream-updates read starts; null while it must be registered (again).
            pa.field("marker", pa.string()),
            pa.field("registered_at", UTC_US),
            pa.field("read_at", UTC_US),
            # The partitions its events made stale, kept until a run that started after `since` succeeds:
            # written in the same commit as the marker that skips those events, so none is ever lost.
            pa.field("pending", pa.list_(PENDING_WORK)),
            # Why the point has no marker or was not read on the last tick (the last error), if any.
            pa.field("problem", pa.string()),
            INGESTED_AT,
        ]
    ),
    # About one row per point (tens of thousands): one small file, rewritten whole by each sensor tick.
    partition_by=(),
    key=("web_id",),
    description="Per point, its PI Web API stream-updates marker and the partitions its events made stale.",
)

RECONCILIATION = TableSpec(
    name="gold.pi_reconciliation",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("name", pa.string()),
            TAG_SHARD,
            # PI counts good values (its Count summary); the lake's counts are of the same values.
            pa.field("lake_good_values", pa.int64(), nullable=False),
            pa.field("pi_good_values", pa.int64()),
            pa.field("difference", pa.int64()),
            pa.field("lake_first", UTC_US),
            pa.field("pi_first", UTC_US),
            pa.field("lake_last", UTC_US),
            pa.field("pi_last", UTC_US),
            # The event-weighted mean of the good values: an edit that keeps the count still shows here.
            pa.field("lake_mean", pa.float64()),
            pa.field("pi_mean", pa.float64()),
            # matches | differs | repaired (matches now, differed before) | unread (PI did not answer)
            pa.field("status", pa.string(), nullable=False),
            pa.field("detail", pa.string()),
            # The run that last materialized the (date, shard) partition, for a repaired point.
            pa.field("repaired_by_run", pa.string()),
            pa.field("checked_at", UTC_US, nullable=False),
            PARTITION_DATE,
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date",),
    key=("partition_date", "web_id"),
    description="Per point and closed day, the lake's values compared with PI's count, first, last and mean.",
)

DATA_LATENCY = TableSpec(
    name="gold.pi_data_latency",
    schema=pa.schema(
        [
            PARTITION_DATE,
            TAG_SHARD,
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("read_at", UTC_US, nullable=False),
            pa.field("window_start", UTC_US),
            pa.field("window_end", UTC_US),
            # Present on this read, absent from the previous read of the same time range (and the reverse).
            pa.field("late_values", pa.int64(), nullable=False),
            pa.field("removed_values", pa.int64(), nullable=False),
            # False when only counts were compared (a large window read again): no percentiles then.
            pa.field("lateness_exact", pa.bool_(), nullable=False),
            pa.field("lateness_p50_s", pa.float64()),
            pa.field("lateness_p95_s", pa.float64()),
            pa.field("lateness_p99_s", pa.float64()),
            pa.field("lateness_max_s", pa.float64()),
            # Values stamped after the PI server's now + tolerance (the source's clock is off), and points.
            pa.field("future_values", pa.int64(), nullable=False),
            pa.field("future_points", pa.int64(), nullable=False),
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("partition_date", "tag_shard", "run_id"),
    description="Per partition and run, the late values found and their lateness, and values in the future.",
)

# The values osipi-stream receives over channels, committed in micro-batches (docs/STREAMING.md). Rows as in
# bronze.pi_timeseries, plus when the stream received each value and which micro-batch committed it.
LIVE_TIMESERIES = TableSpec(
    name="bronze.pi_timeseries_live",
    schema=pa.schema(
        [
            RECORDED_SCHEMA.field("web_id"),
            pa.field("timestamp", UTC_US, nullable=False),
            pa.field("timestamp_ns", pa.int64(), nullable=False),
            *(RECORDED_SCHEMA.field(name) for name in RECORDED_SCHEMA.names[2:]),
            pa.field("received_at", UTC_US, nullable=False),
            pa.field("batch_version", pa.int64(), nullable=False),
            PARTITION_DATE,
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date",),
    # Each value once (web_id, timestamp_ns and the value itself: PI may hold several values at one time).
    key=(),
    description="PI values streamed over channels by osipi-stream, one row per value, in micro-batches.",
)

INGESTION_REPORT = TableSpec(
    name="gold.pi_ingestion_report",
    schema=pa.schema(
        [
            PARTITION_DATE,
            # One figure per row, grouped by section: rate_per_hour, quality_by_area, late_values,
            # failing_checks, event_frames_by_severity. Long, so a new figure adds rows, not columns.
            pa.field("section", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("value", pa.float64(), nullable=False),
            pa.field("detail", pa.string()),
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date",),
    key=("partition_date", "section", "label"),
    description="The daily ingestion report's figures (pi_ingestion_report): one row per figure of a day.",
)

TABLE_SPECS: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TIMESERIES,
        WATERMARKS,
        EVENT_FRAMES,
        POINTS,
        AF_HIERARCHY,
        AF_ATTRIBUTES,
        UPDATE_MARKERS,
        RECONCILIATION,
        DATA_LATENCY,
        LIVE_TIMESERIES,
        INGESTION_REPORT,
    )
}

# -- silver and gold: derived from bronze.pi_timeseries, partitioned like it ------------------------------

SILVER_TIMESERIES = TableSpec(
    name="silver.pi_timeseries_clean",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("point_name", pa.string()),
            pa.field("timestamp", UTC_US, nullable=False),
            pa.field("timestamp_ns", pa.int64(), nullable=False),
            # PI's order among the values of the point at this timestamp (0, 1, ...): files need not keep it.
            pa.field("sequence", pa.int32(), nullable=False),
            # The number of a numeric point; null for every state and for String points.
            pa.field("value", pa.float64()),
            pa.field("string_value", pa.string()),
            # A digital point's own state (its set's code and name); a system state is never here.
            pa.field("digital_state_code", pa.int32()),
            pa.field("digital_state_name", pa.string()),
            # A system state (I/O Timeout, Shutdown, ...): the value is not a number, Good is false.
            pa.field("system_state_code", pa.int32()),
            pa.field("system_state_name", pa.string()),
            pa.field("is_good", pa.bool_(), nullable=False),
            pa.field("questionable", pa.bool_(), nullable=False),
            pa.field("substituted", pa.bool_(), nullable=False),
            pa.field("annotated", pa.bool_(), nullable=False),
            pa.field("point_type", pa.string()),
            pa.field("step", pa.bool_()),
            pa.field("engineering_units", pa.string()),
            # AF context of the attribute that references the point (ingest/silver.py: the rule when
            # several do); null for a point no AF attribute references.
            pa.field("af_attribute_path", pa.string()),
            pa.field("af_attribute_name", pa.string()),
            pa.field("af_attribute_count", pa.int32(), nullable=False),
            pa.field("af_element_path", pa.string()),
            pa.field("af_element_template", pa.string()),
            pa.field("site", pa.string()),
            pa.field("area", pa.string()),
            pa.field("unit", pa.string()),
            PARTITION_DATE,
            TAG_SHARD,
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date", "tag_shard"),
    # Several distinct values of a point at one timestamp are PI data and all stay: no unique key.
    key=(),
    description="PI recorded values cleaned: typed, states split out, exact duplicates removed, AF context; "
    "one (partition_date, tag_shard) partition per bronze partition.",
)

GOLD_HOURLY = TableSpec(
    name="gold.pi_timeseries_hourly",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("point_name", pa.string()),
            pa.field("hour", UTC_US, nullable=False),
            # Events stamped in [hour, hour + 1 h): all of them, and the good ones (PI's Count).
            pa.field("events", pa.int64(), nullable=False),
            pa.field("count", pa.int64(), nullable=False),
            pa.field("good_share", pa.float64()),
            # The remaining columns are null for points that are not numeric (digital, string).
            pa.field("minimum", pa.float64()),
            pa.field("maximum", pa.float64()),
            pa.field("first_value", pa.float64()),
            pa.field("last_value", pa.float64()),
            pa.field("mean_event_weighted", pa.float64()),
            pa.field("mean_time_weighted", pa.float64()),
            # Seconds of the hour covered by good values: the time-weighted mean's weight.
            pa.field("good_seconds", pa.float64()),
            pa.field("step", pa.bool_()),
            # False while the value after the hour is unknown (the open day, or a day whose next day is
            # not in silver yet): the time-weighted figures then stop at the hour's last value.
            pa.field("complete", pa.bool_(), nullable=False),
            PARTITION_DATE,
            TAG_SHARD,
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date", "tag_shard"),
    key=("web_id", "hour"),
    description="Hourly statistics of every point (PI's Count, Minimum, Maximum, event- and time-weighted "
    "Average); one (partition_date, tag_shard) partition per silver partition.",
)

SILVER_EDGES = TableSpec(
    name="silver.pi_timeseries_edges",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("point_name", pa.string()),
            pa.field("point_type", pa.string()),
            pa.field("step", pa.bool_()),
            # first: every value at the point's first timestamp of the day (PI's order in sequence);
            # last: the point's last value of the day (the last one at its last timestamp).
            pa.field("edge", pa.string(), nullable=False),
            pa.field("timestamp_ns", pa.int64(), nullable=False),
            pa.field("sequence", pa.int32(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("is_good", pa.bool_(), nullable=False),
            PARTITION_DATE,
            TAG_SHARD,
            # The same instant as the silver partition written with these rows: readers check they match.
            INGESTED_AT,
        ]
    ),
    partition_by=("partition_date", "tag_shard"),
    key=(),
    description="Per point and silver partition, its first values and its last value: what gold carries "
    "from one day into the next without reading whole days; written with each silver partition.",
)

TABLE_SPECS.update({spec.name: spec for spec in (SILVER_TIMESERIES, SILVER_EDGES, GOLD_HOURLY)})

# -- alarms and notifications: bronze rules, silver alarms, gold alarm summary ------------------------------

NOTIFICATION_SUBSCRIBER = pa.struct(
    [
        pa.field("web_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("contact_type", pa.string()),
        pa.field("contact_template_name", pa.string()),
        pa.field("delivery_format_name", pa.string()),
        pa.field("plug_in_name", pa.string()),
        pa.field("notify_option", pa.string()),
        pa.field("escalation_timeout", pa.string()),
        pa.field("maximum_retries", pa.int32()),
        pa.field("retry_interval", pa.string()),
        # No ConfigString: it holds delivery addresses and may hold credentials.
    ]
)

NOTIFICATION_RULES = TableSpec(
    name="bronze.pi_notification_rules",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("id", pa.string()),
            pa.field("name", pa.string(), nullable=False),
            pa.field("description", pa.string()),
            pa.field("path", pa.string(), nullable=False),
            # The element that owns the rule (its path before \NotificationRules[...]).
            pa.field("element_path", pa.string()),
            pa.field("database_path", pa.string(), nullable=False),
            # An AF event frame search (Template:='Process Alarm' Severity:>=Major), as AF stores it.
            pa.field("criteria", pa.string()),
            pa.field("category_names", STRING_LIST),
            pa.field("template_name", pa.string()),
            pa.field("status", pa.string()),
            pa.field("enabled", pa.bool_(), nullable=False),
            pa.field("auto_created", pa.bool_()),
            pa.field("multi_trigger_event_option", pa.string()),
            pa.field("nonrepetition_interval", pa.string()),
            pa.field("resend_interval", pa.string()),
            pa.field("subscribers", pa.list_(NOTIFICATION_SUBSCRIBER)),
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("web_id",),
    description="PI Notifications rules: criteria, status and subscribers; fully refreshed by every run.",
)

ALARMS = TableSpec(
    name="silver.pi_alarms",
    schema=pa.schema(
        [
            pa.field("web_id", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("path", pa.string()),
            pa.field("template_name", pa.string()),
            # The rule whose criteria the frame meets (the first by path when several do), and how many do.
            pa.field("rule_web_id", pa.string(), nullable=False),
            pa.field("rule_name", pa.string(), nullable=False),
            pa.field("rule_path", pa.string(), nullable=False),
            pa.field("rules_matched", pa.int32(), nullable=False),
            # The frame's primary referenced element (its path from bronze.pi_af_hierarchy).
            pa.field("element_web_id", pa.string()),
            pa.field("element_path", pa.string()),
            pa.field("severity", pa.string()),
            # None 0, Information 1, Warning 2, Minor 3, Major 4, Critical 5: sorts and compares.
            pa.field("severity_level", pa.int8(), nullable=False),
            pa.field("start_time", UTC_US, nullable=False),
            pa.field("end_time", UTC_US),  # null while the alarm is active
            pa.field("duration_seconds", pa.float64()),
            pa.field("can_be_acknowledged", pa.bool_()),
            pa.field("is_acknowledged", pa.bool_()),
            pa.field("acknowledged_by", pa.string()),
            pa.field("acknowledged_at", UTC_US),
            pa.field("seconds_to_acknowledge", pa.float64()),
            PARTITION_DATE,  # the UTC date of start_time
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("web_id",),
    description="Alarms and notification event frames, one row per frame a notification rule selects, "
    "upserted "
    "by WebId as alarms close and are acknowledged.",
)

ALARM_SUMMARY = TableSpec(
    name="gold.pi_alarm_summary",
    schema=pa.schema(
        [
            PARTITION_DATE,
            pa.field("rule_path", pa.string(), nullable=False),
            pa.field("rule_name", pa.string(), nullable=False),
            pa.field("element_path", pa.string()),
            # Alarms that started this day.
            pa.field("alarms", pa.int64(), nullable=False),
            pa.field("acknowledged", pa.int64(), nullable=False),
            # Seconds of the day (up to the run's now for today) with at least one alarm of the group active.
            pa.field("seconds_in_alarm", pa.float64(), nullable=False),
            pa.field("mean_seconds_to_acknowledge", pa.float64()),
            pa.field("max_severity_level", pa.int8(), nullable=False),
            # ISA-18.2: alarms per 10-minute interval of the day (mean and peak).
            pa.field("alarms_per_10_minutes", pa.float64(), nullable=False),
            pa.field("peak_alarms_per_10_minutes", pa.int64(), nullable=False),
            # Alarms that started with 2 or more alarms of the group in the 60 s before them.
            pa.field("chattering_alarms", pa.int64(), nullable=False),
            # Alarms active during the day that had been active for more than 24 h by its end (or now).
            pa.field("standing_alarms", pa.int64(), nullable=False),
            # 1..10 for the day's ten groups with the most alarms; null for the rest.
            pa.field("bad_actor_rank", pa.int32()),
            # The whole day's alarms per operator per 10 minutes (ISA-18.2 target ~1, overloaded above 10).
            pa.field("day_alarms_per_operator_per_10_minutes", pa.float64(), nullable=False),
            INGESTED_AT,
        ]
    ),
    partition_by=(),
    key=("partition_date", "rule_path", "element_path"),
    description="Per rule, element and UTC day: alarm counts, time in alarm, time to acknowledge, ISA-18.2 "
    "rates, chattering and standing alarms, the day's top-10 bad actors.",
)

TABLE_SPECS.update({spec.name: spec for spec in (NOTIFICATION_RULES, ALARMS, ALARM_SUMMARY)})
