#!/usr/bin/env bash
# Start the tickml stack. Today only the model pipeline exists; the services follow.
set -euo pipefail
cd "$(dirname "$0")"

echo "tickml: the stack (model API, UDF agent, InfluxDB, Kapacitor, Grafana) is not built yet."
echo "What works now:"
echo "  make install && .venv/bin/tickml data prepare && .venv/bin/tickml train"
exit 1
