#!/usr/bin/env bash
# The demo, end to end: run the pipeline up to its cutover gate, approve the gate as an
# approver would, and resume the run to completion. Uses the pt of the project's .venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pt="${PT:-$here/../.venv/bin/pt}"
pipeline="$here/quickstart/pulsaride-pipeline.yml"
state="$(mktemp -d)"
trap 'rm -rf "$state"' EXIT

set +e
"$pt" pipeline run "$pipeline" --state-dir "$state" --no-wait
code=$?
set -e
if [[ $code -ne 3 ]]; then
  echo "demo: expected the run to stop at the cutover gate (exit 3), got exit $code" >&2
  exit 1
fi
echo
"$pt" pipeline approve "$pipeline" --state-dir "$state" --job cutover-gate --as demo-approver \
  --reason "validation passed"
echo
"$pt" pipeline resume "$pipeline" --state-dir "$state"
