"""Reading a running API's own request counts from its Prometheus `/metrics`."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

#: The route label of the V2 infer endpoint, as `tickml.api.metrics` counts it.
V2_INFER_ROUTE = "/v2/models/<name>/infer"


def answered(url: str, route: str = "/predict") -> int:
    """POSTs to `route` that the API at `url` answered 200, all its workers together."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "tickml_api_requests_total"
                   and sample.labels == {"endpoint": route, "method": "POST", "status": "200"}))
