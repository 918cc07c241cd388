"""What a recorded read's URL costs in urllib3 before it is sent, with and without percent-escapes.

Builds the query of a stream-set recorded request as ``pi/recorded.py`` does (times, ``maxCount``,
``selectedFields`` and ``--web-ids`` WebIds), once escaping ``:`` and ``;`` (as before session 11) and once
keeping them (``recorded._QUERY_SAFE``), and times ``urllib3.util.parse_url`` on each: requests and urllib3
run it (or its encoding step) twice a request. Prints microseconds a URL.

    .venv/bin/python benchmarks/bench_urls.py
"""

from __future__ import annotations

import argparse
import json
import timeit
from urllib.parse import quote, urlencode

from urllib3.util import parse_url

from osipi_dagster.pi.recorded import _QUERY_SAFE

WEB_ID = "F1DPmN4ZbWQ1AkSb3nXwH0AAAAQUJDX1NFUlZFUlxTSU5VU09JRDAwMDAx"
FIELDS = "Items.WebId;Items.Items.Timestamp;Items.Items.Value;Items.Items.Good;Items.Items.Questionable;" + (
    "Items.Items.Substituted;Items.Items.Annotated;Items.Items.Errors;Items.UnitsAbbreviation;WebException"
)


def url(web_ids: int, safe: str) -> str:
    params = [
        ("startTime", "2025-01-06T00:00:00Z"),
        ("endTime", "2025-01-06T00:59:59.9999999Z"),
        ("maxCount", "4000"),
        ("selectedFields", FIELDS),
        *[("webId", WEB_ID)] * web_ids,
    ]
    query = urlencode(params, safe=safe, quote_via=quote)
    return f"https://pi.example.com/piwebapi/streamsets/recorded?{query}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web-ids", type=int, nargs="+", default=[1, 25, 86, 200])
    parser.add_argument("--number", type=int, default=500)
    args = parser.parse_args()
    rows = []
    for count in args.web_ids:
        row = {"web_ids": count}
        for label, safe in (("escaped", ""), ("unescaped", _QUERY_SAFE)):
            text = url(count, safe)
            seconds = timeit.timeit(lambda text=text: parse_url(text), number=args.number) / args.number
            row[f"{label}_chars"] = len(text)
            row[f"{label}_us"] = round(seconds * 1e6, 1)
        rows.append(row)
        print(
            f"{count} WebIds: {row['escaped_chars']:,} characters escaped {row['escaped_us']} µs, "
            f"unescaped {row['unescaped_us']} µs"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
