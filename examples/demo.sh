#!/usr/bin/env bash
# The demo, end to end, with nothing installed but pt: build the Oracle-style source database
# (SQLite), run the migration pipeline up to its cutover gate, approve the gate as an approver
# would, resume to completion, and verify the run's evidence. Work happens in a fresh folder,
# printed at the end, so you can look around (pt pipeline status / show / export there).
#
#   examples/demo.sh                          # target: embedded SQLite
#   PT_TARGET_URL=postgresql://postgres@127.0.0.1/demo examples/demo.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(cd "$here/../.venv/bin" 2>/dev/null && pwd || true)"
export PATH="${bin:+$bin:}$PATH"
work="${DEMO_DIR:-$(mktemp -d -t pt-demo-XXXXXX)}"
cp "$here"/demo/*.yaml "$here"/demo/*.yml "$here"/demo/target-schema.sql "$work"/
python3 "$here/demo/make_source.py" "$work/source.db"
cd "$work"

set +e
pt pipeline run pulsaride-pipeline.yml --no-wait
code=$?
set -e
if [[ $code -ne 3 ]]; then
  echo "demo: expected the run to stop at the cutover gate (exit 3), got exit $code" >&2
  exit 1
fi
echo
pt pipeline approve pulsaride-pipeline.yml --job cutover-gate --as demo-approver \
  --reason "counts, sample and hash validations passed"
echo
pt pipeline resume pulsaride-pipeline.yml -q
echo
pt pipeline verify pulsaride-pipeline.yml
echo
echo "demo: done in $work (source.db, target.db, .pulsaride/ with the run's evidence)"
