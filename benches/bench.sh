#!/usr/bin/env bash
# Speed and memory figures (not a test: nothing here fails on a slow machine).
#   benches/bench.sh [PATIENTS] [WORKDIR]       default 1000000 patients in /tmp/fastkontakt-bench
# Builds the release binary, generates a synthetic region, then times the register-only rules
# (check, streamed one patient at a time) and translate (CSV → NDJSON), with peak memory.
set -euo pipefail
N=${1:-1000000}
W=${2:-/tmp/fastkontakt-bench}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=target/release/fastkontakt
mkdir -p "$W"
if [ ! -f "$W/region-$N/register.csv" ]; then
  /usr/bin/time -f "generate: %e s, peak %M KiB" $BIN samples generate --patients "$N" --seed 1 -o "$W/region-$N" 2>&1 | tail -1
fi
REG="$W/region-$N/register.csv"
MB=$(du -m "$REG" | cut -f1)
ROWS=$(($(wc -l < "$REG") - 1))
echo "register: $ROWS rows, $MB MB"
measure() { # name, then the command
  local name=$1; shift
  local t; t=$(mktemp)
  /usr/bin/time -o "$t" -f "%e %M" "$@" >/dev/null 2>&1 || true
  local secs kib; read -r secs kib < "$t"; rm -f "$t"
  awk -v n="$name" -v s="$secs" -v k="$kib" -v mb="$MB" -v rows="$ROWS" \
    'BEGIN { printf "%-34s %7.2f s  %8.1f MB/s  %9.0f rows/s  peak %6.0f MiB\n", n, s, mb/s, rows/s, k/1024 }'
}
measure "check (register-only rules)" $BIN check --register "$REG" --profile orebro --as-of 2026-06-01 --fail-on never --format json -o "$W/findings.json"
measure "translate CSV → NDJSON" $BIN translate "$REG" --ndjson -o "$W/out.ndjson" --quarantine "$W/q.csv"
