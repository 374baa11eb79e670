#!/usr/bin/env bash
# Memory stays flat whatever the input size: validates a 1 GB NDJSON file and a 1 GB batch
# envelope and prints the wall time and the peak resident memory of each run.
# Usage: deploy/bench/validate-large-file.sh   (needs python3 and GNU time at /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import json, sys
out = sys.argv[1]
record = json.load(open("profiles/examples/apotti/SOSKU_DECISION/valid/positive-approved.json"))
line = json.dumps(record, ensure_ascii=False)
n = (1024 ** 3) // (len(line.encode()) + 1) + 1
with open(f"{out}/big.ndjson", "w") as f:
    for i in range(n):
        f.write(line.replace("SD-2026", f"SD-{i}-2026", 1) + "\n")
with open(f"{out}/big.json", "w") as f:
    f.write('{"EXPORT_ID": "EXP-BIG", "EXPORT_DTTM": "2026-03-02 02:00:00", "RECORDS": [\n')
    for i in range(n):
        f.write(("," if i else "") + line + "\n")
    f.write("]}\n")
PY
for file in big.ndjson big.json; do
  echo "== $file ($(du -h "$work/$file" | cut -f1))"
  /usr/bin/time -v ./target/release/gateway validate "$work/$file" 2>&1 \
    | grep -E "checked|Elapsed|Maximum resident"
done
