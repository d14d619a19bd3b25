#!/usr/bin/env bash
# Speed and memory figures (not a test: nothing here fails on a slow machine).
#   benches/bench.sh [PATIENTS] [WORKDIR]       default 1000000 patients in /tmp/fkbench
# Builds the release binary, generates a synthetic region (register CSV + the EHR as NDJSON),
# then times, with peak memory (/usr/bin/time):
#   - reconcile from files (the issue's goal: 1 M patients in < 30 s and < 1 GiB),
#   - check on the register alone, and on register + EHR files,
#   - translate CSV → NDJSON,
#   - the strict FHIR parse of the same NDJSON sample in fastkontakt (fhirbolt) and in
#     Python's fhir.resources, and their ratio (needs `pip install fhir.resources`).
set -euo pipefail
N=${1:-1000000}
W=${2:-/tmp/fkbench}
cd "$(dirname "$0")/.."
cargo build --release -q
cargo build --release -q --example parse_ndjson
BIN=target/release/fastkontakt
mkdir -p "$W"
R="$W/region-$N"
if [ ! -f "$R/register.csv" ]; then
  /usr/bin/time -f "generate: %e s, peak %M KiB" $BIN samples generate --patients "$N" --seed 1 -o "$R" 2>&1 | tail -1
fi
REG="$R/register.csv"
REG_MB=$(du -m "$REG" | cut -f1)
EHR_MB=$(du -mc "$R"/ehr/*.ndjson | tail -1 | cut -f1)
ROWS=$(($(wc -l < "$REG") - 1))
echo "region: $N patients; register $ROWS rows, $REG_MB MB; EHR NDJSON $EHR_MB MB"
measure() { # name, MB read, then the command
  local name=$1 mb=$2; shift 2
  local t; t=$(mktemp)
  /usr/bin/time -o "$t" -f "%e %M" "$@" >/dev/null 2>&1 || true
  # GNU time puts "Command exited with non-zero status N" first when findings set the exit code.
  local secs kib; read -r secs kib < <(tail -n 1 "$t"); rm -f "$t"
  awk -v n="$name" -v s="$secs" -v k="$kib" -v mb="$mb" \
    'BEGIN { printf "%-44s %7.2f s  %8.1f MB/s  peak %6.0f MiB\n", n, s, mb/s, k/1024 }'
}
COMMON=(--profile orebro --as-of 2026-06-01 --fail-on never)
measure "reconcile from files (register + EHR)" $((REG_MB + EHR_MB)) \
  $BIN reconcile --register "$REG" --ehr "$R/ehr" "${COMMON[@]}" --report "$W/report"
measure "check, register + EHR files" $((REG_MB + EHR_MB)) \
  $BIN check --register "$REG" --ehr "$R/ehr" "${COMMON[@]}" --format json -o "$W/findings-ehr.json"
measure "check, register only" "$REG_MB" \
  $BIN check --register "$REG" "${COMMON[@]}" --format json -o "$W/findings.json"
measure "translate CSV → NDJSON" "$REG_MB" \
  $BIN translate "$REG" --ndjson -o "$W/out.ndjson" --quarantine "$W/q.csv"
ls -l "$W/report"

# The same strict parse of the same NDJSON in Rust (fhirbolt) and Python (fhir.resources).
S="$W/parse-sample.ndjson"
{ head -n 40000 "$R/ehr/CareTeam.ndjson"; head -n 10000 "$R/ehr/Patient.ndjson"; } > "$S"
RUST=$(target/release/examples/parse_ndjson "$S")
echo "fastkontakt (fhirbolt): $RUST"
if python3 -c 'import fhir.resources' 2>/dev/null; then
  PY=$(python3 benches/parse_fhir_resources.py "$S")
  echo "python fhir.resources:  $PY"
  python3 - "$RUST" "$PY" <<'PYEOF'
import json, sys
r, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
mb = r["bytes"] / 1e6
print(f"parse {r['resources']} resources ({mb:.1f} MB): "
      f"fastkontakt {mb / r['seconds_one_thread']:.1f} MB/s on one thread, "
      f"{mb / r['seconds_all_cores']:.1f} MB/s on {r['cores']} cores; "
      f"fhir.resources {mb / p['seconds_one_thread']:.1f} MB/s; "
      f"ratio {p['seconds_one_thread'] / r['seconds_one_thread']:.1f}x (one thread each), "
      f"{p['seconds_one_thread'] / r['seconds_all_cores']:.1f}x (fastkontakt on all cores)")
PYEOF
else
  echo "python fhir.resources not installed (pip install fhir.resources): no ratio"
fi
