#!/usr/bin/env bash
# Golden cases at scale (not a test: it only prints): makes CASES cases (a patient each) from a
# generated region, blesses them, then times `mapping test` over them. The goal: 500 cases in
# under 10 s.   benches/golden.sh [CASES] [WORKDIR]
set -euo pipefail
N=${1:-500}
W=${2:-/tmp/fkbench-golden}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=target/release/fastkontakt
rm -rf "$W" && mkdir -p "$W"
# Some patients have several rows: generate a few more patients than cases, keep the first N.
$BIN samples generate --patients "$((N * 2))" --seed 7 -o "$W/region" >/dev/null 2>&1
python3 samples/golden/make-cases.py "$W/region/register.csv" "$W/all" 2>/dev/null
mkdir -p "$W/cases"
mapfile -t all < <(ls "$W/all")
for c in "${all[@]:0:$N}"; do mv "$W/all/$c" "$W/cases/"; done
/usr/bin/time -f "bless:        %e s, peak %M KiB" $BIN mapping test "$W/cases" --bless 2>&1 | tail -2
/usr/bin/time -f "mapping test: %e s, peak %M KiB" $BIN mapping test "$W/cases" 2>&1 | tail -2
