"""The Arrow schemas of time-series reads: other modules code against exactly these names and types.

``RECORDED_SCHEMA`` is the schema of every recorded, interpolated, plot, value and end read; one row is one
PI event of one stream:

==============  ===========================  ==========================================================
column          type                         meaning
==============  ===========================  ==========================================================
web_id          string, not null             the stream's WebId, exactly as the caller passed it
timestamp       timestamp[ns, UTC], not null PI's time, 100 ns ticks kept
value           float64                      the numeric value; null for strings, digital and system
                                             states (AF Booleans read as 1.0 / 0.0); NaN and +-inf for
                                             the "NaN", "Infinity", "-Infinity" PI writes for them
string_value    string                       the value of String points (and DateTime, Guid, arrays as
                                             text); otherwise null. Never exactly "NaN", "Infinity" or
                                             "-Infinity": those always read as floats (see ``decode``)
state_code      int32                        the code of a digital or system state, otherwise null
state_name      string                       the name of a digital or system state, otherwise null
is_system       bool, not null               the value is a system state (I/O Timeout, Shutdown, ...)
good            bool, not null               PI's Good flag
questionable    bool, not null               PI's Questionable flag
substituted     bool, not null               PI's Substituted flag
annotated       bool, not null               PI's Annotated flag
units           string                       the stream's units abbreviation, null when PI gives none
==============  ===========================  ==========================================================

``SUMMARY_SCHEMA`` adds ``summary_type`` after ``web_id``; its ``timestamp`` is the one PI gives the
summary value (the interval start, or the event time for Minimum and Maximum).
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")

_VALUE_FIELDS = [
    pa.field("timestamp", TIMESTAMP_TYPE, nullable=False),
    pa.field("value", pa.float64()),
    pa.field("string_value", pa.string()),
    pa.field("state_code", pa.int32()),
    pa.field("state_name", pa.string()),
    pa.field("is_system", pa.bool_(), nullable=False),
    pa.field("good", pa.bool_(), nullable=False),
    pa.field("questionable", pa.bool_(), nullable=False),
    pa.field("substituted", pa.bool_(), nullable=False),
    pa.field("annotated", pa.bool_(), nullable=False),
    pa.field("units", pa.string()),
]

RECORDED_SCHEMA = pa.schema([pa.field("web_id", pa.string(), nullable=False), *_VALUE_FIELDS])

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("web_id", pa.string(), nullable=False),
        pa.field("summary_type", pa.string(), nullable=False),
        *_VALUE_FIELDS,
    ]
)
