"""Run with the MLflow server's own Python: reads a trace back through the `mlflow` client.

    python read_mlflow.py TRACKING_URI TRACE_ID FILTER...

Prints one JSON line: the trace's cost (its `mlflow.trace.cost` metadata), each span's
`mlflow.llm.cost`, and for each FILTER the trace ids `mlflow.search_traces` finds with it.
"""

from __future__ import annotations

import json
import sys

import mlflow


def main(uri: str, trace_id: str, filters: list[str]) -> None:
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_trace(trace_id)
    if found is None:
        print(json.dumps({"found": False}))
        return
    cost = found.info.trace_metadata.get("mlflow.trace.cost")
    searches = {
        text: [
            t.info.trace_id
            for t in mlflow.search_traces(locations=["0"], filter_string=text, return_type="list")
        ]
        for text in filters
    }
    print(
        json.dumps(
            {
                "found": True,
                "spans": len(found.data.spans),
                "trace_cost": json.loads(cost) if cost else None,
                "span_cost": {s.name: s.attributes.get("mlflow.llm.cost") for s in found.data.spans},
                "searches": searches,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
