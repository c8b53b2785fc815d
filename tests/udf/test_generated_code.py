"""The committed udf_pb2.py is what `make proto` generates from udf.proto today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

UDF = Path(__file__).resolve().parents[2] / "tickml" / "udf"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{UDF}",
                    f"--python_out={tmp_path}", str(UDF / "udf.proto")], check=True)
    fresh = (tmp_path / "udf_pb2.py").read_text()
    assert fresh == (UDF / "udf_pb2.py").read_text(), "udf_pb2.py is stale: run `make proto`"


def test_proto_keeps_kapacitors_field_numbers() -> None:
    from tickml.udf import udf_pb2

    point = udf_pb2.Point.DESCRIPTOR.fields_by_name
    assert point["byName"].number == 11 and point["fieldsBool"].number == 12
    response = udf_pb2.Response.DESCRIPTOR.fields_by_name
    assert response["error"].number == 6 and response["point"].number == 17
    assert udf_pb2.Request.DESCRIPTOR.fields_by_name["end"].number == 18
    assert udf_pb2.Request.DESCRIPTOR.full_name == "agent.Request"
