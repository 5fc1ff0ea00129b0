"""RSS of the `costspan.cost` metric for many distinct customers (issue 23, item 4).

    python benchmarks/bench_metric_cardinality.py                 # 200,000 customers
    python benchmarks/bench_metric_cardinality.py 50000

Each customer makes one priced call, recorded on `CallMetrics` (the recorder every instrumentor
uses) with a real SDK MeterProvider and an in-memory reader (cumulative: the SDK keeps every
series, as a periodic OTLP exporter does); the metrics are collected once at the end. Prints the
resident-set growth over a 1,000-call warm-up (of one customer), the number of `costspan.cost`
series and their sum. To measure a checkout without the bound, run it with that checkout's `src`
first on PYTHONPATH.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from costspan import attributes as A
from costspan.telemetry import metrics as costspan_metrics

CALL = {A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o"}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(customers: int) -> None:
    reader = InMemoryMetricReader()
    recorder = costspan_metrics.CallMetrics(MeterProvider(metric_readers=[reader]))
    for _ in range(1000):
        recorder.record(CALL, {A.CUSTOMER_ID: "warm-up"}, 0.1, 100, 20, 0.5, None)
    gc.collect()
    before = rss_mib()
    for n in range(customers):
        recorder.record(CALL, {A.CUSTOMER_ID: f"cus_{n:08d}"}, 0.1, 100, 20, 0.5, None)
    data = reader.get_metrics_data()
    gc.collect()
    after = rss_mib()
    points = [
        point
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == costspan_metrics.COST
        for point in metric.data.data_points
    ]
    limit = getattr(costspan_metrics, "DEFAULT_DIMENSION_VALUE_LIMIT", None)
    print(
        f"{customers:,} customers (limit: {f'{limit:,}' if limit else 'none'}): "
        f"RSS +{after - before:.1f} MiB, {len(points):,} costspan.cost series, "
        f"sum ${sum(p.value for p in points):,.2f} (expected ${(customers + 1000) * 0.5:,.2f})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
