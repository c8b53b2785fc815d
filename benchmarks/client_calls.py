"""The model API client's cost per call, against a server that answers at once.

    .venv/bin/python benchmarks/client_calls.py                    # this checkout
    .venv/bin/python benchmarks/client_calls.py --against 5b706c1  # and the client then

A stand-in server (another process, raw sockets, kept-alive connections) listens on
one port of 127.0.0.1 and 127.0.0.2 and answers every call with a prepared body of
`--rows` predictions, in tickml's `/predict` form or the V2 one, so what is timed is
the client: building the body, the HTTP exchange, reading the answer. Each round calls
every variant `--calls` times, one after the other, so that load from elsewhere falls on
all of them alike. The figures are per call, wall time and the client process's CPU time
(the server runs elsewhere): the best round, which other load disturbed least (what
timeit reports), and the median of the rounds. `--against REV` adds the client of that revision
(`git show REV:tickml/udf/client.py`), on the `/predict` path, for a before and after
measured minutes apart on the same machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from tickml import schema
from tickml.udf.client import PredictClient

ROOT = Path(__file__).resolve().parents[1]
ADDRESSES = ("127.0.0.1", "127.0.0.2")

SERVER = textwrap.dedent('''
    import socket, sys, threading
    predict_body, v2_body = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()

    def answer(body):
        return (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                b"Content-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)

    answers = {False: answer(predict_body), True: answer(v2_body)}

    def serve(conn):
        buffer = b""
        while True:
            while b"\\r\\n\\r\\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\\r\\n\\r\\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
            while len(buffer) < length:
                buffer += conn.recv(65536)
            buffer = buffer[length:]
            conn.sendall(answers[b"/infer" in head.split(b"\\r\\n")[0]])

    def listen(address, port):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(16)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    port = int(sys.argv[3])
    for address in sys.argv[4:]:
        threading.Thread(target=listen, args=(address, port), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()
''')


def bodies(rows: int) -> tuple[bytes, bytes]:
    """The prepared `/predict` and V2 answers for `rows` rows."""
    rng = np.random.default_rng(1)
    probabilities = rng.random(rows).tolist()
    predict = {"model": {"name": "fraud-lgbm", "version": 1, "threshold": 0.18},
               "predictions": [{"probability": p, "fraud": p >= 0.18} for p in probabilities]}
    v2 = {"model_name": "fraud-lgbm", "model_version": "1", "parameters": {"threshold": 0.18},
          "outputs": [{"name": "probability", "datatype": "FP64", "shape": [rows],
                       "data": probabilities},
                      {"name": "fraud", "datatype": "BOOL", "shape": [rows],
                       "data": [p >= 0.18 for p in probabilities]}]}
    return orjson.dumps(predict), orjson.dumps(v2)


def client_at(revision: str) -> type:
    """`PredictClient` as `tickml/udf/client.py` was at `revision`."""
    source = subprocess.run(["git", "show", f"{revision}:tickml/udf/client.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "client_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("client_then", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.PredictClient


def free_port() -> int:
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((ADDRESSES[0], 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket() as probe:
                probe.bind((ADDRESSES[1], port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def measure(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """Wall and CPU microseconds per call."""
    call()  # the connection, opened once
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return ((time.perf_counter() - wall) / calls * 1e6,
            (time.process_time() - cpu) / calls * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="rows per call (the agent's "
                        "default batch)")
    parser.add_argument("--calls", type=int, default=200, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--against", help="also time the client of this git revision")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    predict_body, v2_body = bodies(args.rows)
    (folder / "predict.json").write_bytes(predict_body)
    (folder / "v2.json").write_bytes(v2_body)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(folder / "predict.json"), str(folder / "v2.json"),
         str(port), *ADDRESSES], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    rng = np.random.default_rng(2)
    rows = (rng.normal(size=(args.rows, len(schema.FEATURES))) * 3).tolist()

    base = f"http://{ADDRESSES[0]}:{port}"
    clients = {}
    if args.against:
        clients[f"/predict, client at {args.against}"] = client_at(args.against)(base, 2.0, 0.0)
    clients["/predict"] = PredictClient(base, 2.0, 0.0)
    clients["/predict, a name with 2 replicas"] = PredictClient(
        f"http://bench.replicas.test:{port}", 2.0, 0.0, resolve=lambda host: list(ADDRESSES))
    clients["V2 infer"] = PredictClient(f"{base}/v2/models/fraud-lgbm/infer", 2.0, 0.0)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    try:
        for _ in range(args.rounds):
            for name, client in clients.items():
                figures[name].append(measure(lambda c=client: c.predict(rows), args.calls))
    finally:
        for client in clients.values():
            client.close()
        server.stdin.close()
        server.wait(timeout=10)
    print(f"{args.rows} rows a call, {args.calls} calls a round, {args.rounds} rounds: "
          "µs per call, best round / median")
    for name, runs in figures.items():
        wall, cpu = ([run[i] for run in runs] for i in (0, 1))
        print(f"  {name:40s} wall {min(wall):6.1f} / {statistics.median(wall):6.1f}   "
              f"client CPU {min(cpu):6.1f} / {statistics.median(cpu):6.1f}")

if __name__ == "__main__":
    main()
