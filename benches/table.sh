#!/usr/bin/env bash
# Issue 18's table in one run, each row beside its comparison (not a test: it only prints).
#   benches/table.sh [PATIENTS] [WORKDIR]     default 1000000 patients in /tmp/fkbench
# Rows: reconcile from files (PATIENTS; under the default --memory 768, and in one pass); check --ehr and translate FHIR → CSV of a 60 MB slice
# (and FHIR → CSV of the whole region's EHR, and of a BIG-patient region's, default 3,000,000)
# of the generated EHR (the directory, 20,000 Patients, 40,000 CareTeams) against Python
# fhir.resources only parsing the same files (`pip install fhir.resources`); translate CSV →
# NDJSON (PATIENTS); sync of a 10,000-patient region into hfs against the same resources POSTed
# raw in 1,000-entry transactions (benches/sync_rate.sh; needs hfs, skipped without it).
# Wall time and peak resident memory by /usr/bin/time; release build.
set -euo pipefail
N=${1:-1000000}
W=${2:-/tmp/fkbench}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/fastkontakt
mkdir -p "$W"
R="$W/region-$N"
[ -f "$R/register.csv" ] || $BIN samples generate --patients "$N" --seed 1 -o "$R" >/dev/null
S="$W/ehr60"
if [ ! -f "$S/CareTeam.ndjson" ]; then
  mkdir -p "$S"
  cp "$R"/ehr/{Organization,Practitioner,PractitionerRole}.ndjson "$S/"
  head -n 20000 "$R/ehr/Patient.ndjson" > "$S/Patient.ndjson"
  head -n 40000 "$R/ehr/CareTeam.ndjson" > "$S/CareTeam.ndjson"
fi
mb() { du -cb "$@" | tail -1 | awk '{ printf "%.1f", $1 / 1e6 }'; }
run() { # prints "seconds peak_mib" of the command
  local t; t=$(mktemp)
  /usr/bin/time -o "$t" -f "%e %M" "$@" >/dev/null 2>&1 || true
  tail -n 1 "$t" | awk '{ printf "%s %.0f\n", $1, $2 / 1024 }'; rm -f "$t"
}
ROWS=()
row() { ROWS+=("$(printf '| %s | %s | %s | %s | %s |' "$@")"); }
COMMON=(--profile orebro --as-of 2026-06-01 --fail-on never)

# 1. reconcile from files.
read -r s m < <(run $BIN reconcile --register "$R/register.csv" --ehr "$R/ehr" "${COMMON[@]}" --report "$W/report")
IN=$(mb "$R/register.csv" "$R"/ehr/*.ndjson)
row "reconcile from files, $N patients ($IN MB)" "$s s, $m MiB" "goal: 20 s, 768 MiB" \
  "$(awk -v s="$s" -v m="$m" 'BEGIN { printf "%.2f× the time, %.2f× the memory", s / 20, m / 768 }')" \
  "$(awk -v s="$s" -v m="$m" 'BEGIN { print (s < 20 && m < 768) ? "yes" : "no" }')"

# 1b. the same in one pass (a budget that allows it): the faster, larger side of the trade.
read -r s m < <(run $BIN reconcile --register "$R/register.csv" --ehr "$R/ehr" "${COMMON[@]}" --memory 1024 --report "$W/report")
row "reconcile from files, one pass (--memory 1024)" "$s s, $m MiB" "goal: 20 s, 768 MiB" \
  "$(awk -v s="$s" -v m="$m" 'BEGIN { printf "%.2f× the time, %.2f× the memory", s / 20, m / 768 }')" \
  "$(awk -v s="$s" -v m="$m" 'BEGIN { print (s < 20 && m < 768) ? "yes" : "no" }')"

# 2. check --ehr on the slice, against Python only parsing it.
SMB=$(mb "$S"/*.ndjson)
read -r s m < <(run $BIN check --ehr "$S" "${COMMON[@]}" --format json -o "$W/findings60.json")
if python3 -c 'import fhir.resources' 2>/dev/null; then
  cat "$S"/*.ndjson > "$W/ehr60-all.ndjson"
  py=$(python3 benches/parse_fhir_resources.py "$W/ehr60-all.ndjson" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds_one_thread"])')
  row "check --ehr, $SMB MB slice" "$s s, $m MiB" "fhir.resources parse only: $py s" \
    "$(awk -v s="$s" -v p="$py" 'BEGIN { printf "%.1f×", p / s }')" \
    "$(awk -v s="$s" -v p="$py" 'BEGIN { print (p / s >= 40) ? "yes (≥ 40×)" : "no (goal ≥ 40×)" }')"
else
  row "check --ehr, $SMB MB slice" "$s s, $m MiB" "fhir.resources not installed" "–" "–"
fi

# 3. translate FHIR → CSV of the slice.
read -r s m < <(run $BIN translate "$S" -o "$W/ehr60.csv")
row "translate FHIR → CSV, $SMB MB" "$s s, $m MiB" "goal: ≥ 100 MB/s, < 150 MiB" \
  "$(awk -v s="$s" -v mb="$SMB" 'BEGIN { printf "%.0f MB/s", mb / s }')" \
  "$(awk -v s="$s" -v m="$m" -v mb="$SMB" 'BEGIN { print (mb / s >= 100 && m < 150) ? "yes" : "no" }')"

# 3b. translate FHIR → CSV of the whole region's EHR: the memory goal "whatever the input size".
EMB=$(mb "$R"/ehr/*.ndjson)
read -r s m < <(run $BIN translate "$R/ehr" -o /dev/null)
row "translate FHIR → CSV, whole region, $EMB MB" "$s s, $m MiB" "goal: < 150 MiB, ≥ 100 MB/s" \
  "$(awk -v s="$s" -v mb="$EMB" 'BEGIN { printf "%.0f MB/s", mb / s }')" \
  "$(awk -v s="$s" -v m="$m" -v mb="$EMB" 'BEGIN { print (m < 150) ? ((mb / s >= 100) ? "yes" : "memory yes, speed no") : "no" }')"

# 3c. the same of a three times larger region (BIG patients; BIG=0 skips it): the memory goal
# holds whatever the input size only if this row stays under it too (4.4 GB of files).
BIG=${BIG:-3000000}
if [ "$BIG" -gt 0 ]; then
  RB="$W/region-$BIG"
  [ -f "$RB/register.csv" ] || $BIN samples generate --patients "$BIG" --seed 1 -o "$RB" >/dev/null
  BMB=$(mb "$RB"/ehr/*.ndjson)
  read -r s m < <(run $BIN translate "$RB/ehr" -o /dev/null)
  row "translate FHIR → CSV, a $BIG-patient region's EHR, $BMB MB" "$s s, $m MiB" "goal: < 150 MiB, ≥ 100 MB/s" \
    "$(awk -v s="$s" -v mb="$BMB" 'BEGIN { printf "%.0f MB/s", mb / s }')" \
    "$(awk -v s="$s" -v m="$m" -v mb="$BMB" 'BEGIN { print (m < 150) ? ((mb / s >= 100) ? "yes" : "memory yes, speed no") : "no" }')"
fi

# 4. translate CSV → NDJSON.
RMB=$(mb "$R/register.csv")
read -r s m < <(run $BIN translate "$R/register.csv" --ndjson -o "$W/out.ndjson" --quarantine "$W/q.csv")
OMB=$(mb "$W/out.ndjson"); rm -f "$W/out.ndjson"
row "translate CSV → NDJSON, $RMB MB in, $OMB MB out" "$s s, $m MiB" "goal: ≥ 40 MB/s in" \
  "$(awk -v s="$s" -v mb="$RMB" 'BEGIN { printf "%.1f MB/s", mb / s }')" \
  "$(awk -v s="$s" -v mb="$RMB" 'BEGIN { print (mb / s >= 40) ? "yes" : "no" }')"

# 5. sync against the server's own rate.
if command -v hfs >/dev/null; then
  j=$(benches/sync_rate.sh 10000 "$W" | tail -1)
  read -r a b r b2 r2 < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["sync_rps"], d["raw_rps"], d["ratio"], d["raw2_rps"], d["ratio2"])' "$j")
  row "sync, 10,000 patients into hfs" "$a resources/s" "raw 1,000-entry transactions: $b resources/s (two at a time: $b2)" \
    "$(awk -v r="$r" -v r2="$r2" 'BEGIN { printf "%.0f %% (%.0f %% of two at a time)", r * 100, r2 * 100 }')" \
    "$(awk -v r="$r" 'BEGIN { print (r >= 0.9) ? "yes" : "no (goal ≥ 90 %)" }')"
else
  row "sync, 10,000 patients into hfs" "hfs not installed" "–" "–" "–"
fi

echo "| work | fastkontakt | comparison | ratio | met |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
