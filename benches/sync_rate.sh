#!/usr/bin/env bash
# Sync against the server's own pace (not a test: it only prints).
#   benches/sync_rate.sh [PATIENTS] [WORKDIR]      default 10000 patients in /tmp/fkbench
# A generated region's register is synced into a fresh hfs (the test server) by `fastkontakt
# sync`; then, into another fresh hfs, the same resources (what `translate --ndjson` writes for
# the register, plus one Provenance per 1,000) are POSTed as 1,000-entry transaction Bundles,
# one after the other, by curl: the server's own rate for these resources. Resources on the
# server are counted after each run (`_summary=count`), so both rates are resources per second
# that landed. Then the same Bundles two at a time (the sync keeps two transactions in flight).
# Prints one JSON line: {"sync_rps", "raw_rps", "ratio", "raw2_rps", "ratio2", ...}.
set -euo pipefail
N=${1:-10000}
W=${2:-/tmp/fkbench}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/fastkontakt
DATA=${FASTKONTAKT_HFS_DATA:-$HOME/.cache/fastkontakt/hfs-data}
R="$W/sync-$N"
mkdir -p "$R"
[ -f "$R/register.csv" ] || $BIN samples generate --patients "$N" --seed 7 -o "$R" >/dev/null 2>&1
PORT=18391
BASE="http://127.0.0.1:$PORT"
HFS_PID=
start_hfs() {
  rm -rf "$R/hfs" && mkdir -p "$R/hfs"
  (cd "$R/hfs" && exec env HFS_BASE_URL="$BASE" HFS_VALIDATION_MODE=enforce HFS_UI_ENABLED=false \
    HFS_NL_SEARCH_ENABLED=false HFS_LOG_LEVEL=warn \
    hfs --host 127.0.0.1 --port $PORT --database-url "$R/hfs/fhir.db" --data-dir "$DATA" \
    >/dev/null 2>&1) &
  HFS_PID=$!
  for _ in $(seq 1 120); do curl -sf "$BASE/metadata" >/dev/null && return 0; sleep 0.5; done
  echo "hfs did not start" >&2; exit 2
}
stop_hfs() { [ -n "$HFS_PID" ] && kill "$HFS_PID" 2>/dev/null && wait "$HFS_PID" 2>/dev/null || true; HFS_PID=; }
trap stop_hfs EXIT
count() {
  local total=0
  for t in Patient Practitioner PractitionerRole Organization CareTeam Task Provenance; do
    local n; n=$(curl -sf "$BASE/$t?_summary=count" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("total",0))')
    total=$((total + n))
  done
  echo $total
}
now() { date +%s.%N; }

# 1. fastkontakt sync.
start_hfs
KEY="$R/state.key"; head -c 32 /dev/urandom | base64 > "$KEY"; chmod 600 "$KEY"
rm -f "$R/state.sqlite"*
t0=$(now)
$BIN sync --register "$R/register.csv" --ehr "$BASE" --state "$R/state.sqlite" --state-key "file:$KEY" \
  --summary "$R/summary.json" ${SYNC_ARGS:-} >/dev/null 2>"$R/sync.log" || true
t1=$(now)
SYNC_N=$(count)
stop_hfs

# 2. The same resources, POSTed raw in 1,000-entry transactions.
$BIN translate "$R/register.csv" --ndjson -o "$R/resources.ndjson" --quarantine "$R/q.csv" >/dev/null 2>&1 || true
rm -rf "$R/bundles" && mkdir -p "$R/bundles"
python3 - "$R/resources.ndjson" "$R/bundles" <<'PY'
import json, sys, uuid, datetime
lines = [l for l in open(sys.argv[1]) if l.strip()]
for k in range(0, len(lines), 1000):
    entries = []
    for l in lines[k:k + 1000]:
        r = json.loads(l)
        entries.append({"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
                        "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}})
    p = str(uuid.uuid4())
    entries.append({"fullUrl": f"urn:uuid:{p}", "resource": {
        "resourceType": "Provenance", "id": p,
        "target": [{"reference": f"{e['request']['url']}"} for e in entries[:50]],
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "agent": [{"who": {"display": "bench"}}]},
        "request": {"method": "PUT", "url": f"Provenance/{p}"}})
    json.dump({"resourceType": "Bundle", "type": "transaction", "entry": entries},
              open(f"{sys.argv[2]}/{k // 1000:05d}.json", "w"))
PY
start_hfs
t2=$(now)
for f in "$R"/bundles/*.json; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/fhir+json' \
    --data-binary "@$f" "$BASE")
  [ "$code" = 200 ] || echo "raw transaction $f: HTTP $code" >&2
done
t3=$(now)
RAW_N=$(count)
stop_hfs

# 3. The same Bundles two at a time, as the sync keeps two transactions in flight: what the
# server can do when it is kept busy on both of its cores.
start_hfs
t4=$(now)
ls "$R"/bundles/*.json | xargs -P 2 -I{} curl -s -o /dev/null -H 'Content-Type: application/fhir+json' \
  --data-binary @{} "$BASE"
t5=$(now)
RAW2_N=$(count)
stop_hfs
python3 - "$t0" "$t1" "$SYNC_N" "$t2" "$t3" "$RAW_N" "$N" "$t4" "$t5" "$RAW2_N" <<'PY'
import json, sys
t0, t1, n1, t2, t3, n2, p, t4, t5, n3 = sys.argv[1:]
s, r = int(n1) / (float(t1) - float(t0)), int(n2) / (float(t3) - float(t2))
r2 = int(n3) / (float(t5) - float(t4))
print(json.dumps({"patients": int(p), "sync_resources": int(n1), "sync_seconds": round(float(t1) - float(t0), 1),
                  "sync_rps": round(s, 1), "raw_resources": int(n2),
                  "raw_seconds": round(float(t3) - float(t2), 1), "raw_rps": round(r, 1),
                  "ratio": round(s / r, 3), "raw2_resources": int(n3),
                  "raw2_seconds": round(float(t5) - float(t4), 1), "raw2_rps": round(r2, 1),
                  "ratio2": round(s / r2, 3)}))
PY
