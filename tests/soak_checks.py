"""What every soak test asserts of `tickml bench soak`'s results, native or Docker."""

from __future__ import annotations

from typing import Any

from tickml.bench.faults import FAULTS


def assert_the_soak_passed(results: dict[str, Any], minutes: float, rate: float) -> None:
    """Every fault kind injected; nothing missing, doubled or unscored; every malformed
    point marked; live outside fault windows; one UDF connection; clean logs; the verdict."""
    assert {f["kind"] for f in results["faults"] if not f["error"]} == set(FAULTS), \
        [f for f in results["faults"] if f["error"]]
    assert results["transactions"] > minutes * 60 * rate * 0.8
    assert (results["missing_count"], results["doubled_count"], results["unscored_count"]) \
        == (0, 0, 0), results["missing"]
    assert results["bad_points"]["wrong"] == {}
    assert results["live_share_outside_faults"]["share"] >= 0.99, \
        results["live_share_outside_faults"]
    assert results["udf_connections"] == 1
    assert results["log_problems"] == {}
    assert results["verdict"]["passed"], results["verdict"]["failures"]
