#!/usr/bin/env bash
# The service's $check under load (not a test: it only prints): CLIENTS concurrent clients POST
# a ~1 MB Bundle to /fhir/$check for SECONDS seconds; requests per second, p50 and p99 latency,
# and the service's peak memory (VmHWM) with its memory at the end (VmRSS): memory must stay
# bounded however long it runs.     benches/serve_check.sh [CLIENTS] [SECONDS] [WORKDIR]
set -euo pipefail
C=${1:-50}
S=${2:-60}
W=${3:-/tmp/fkbench-serve}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/fastkontakt
mkdir -p "$W"
# A Bundle of about 1 MB: a generated region's EHR, as a collection.
if [ ! -f "$W/bundle.json" ]; then
  $BIN samples generate --patients 600 --seed 5 -o "$W/region" >/dev/null
  python3 - "$W" <<'PY'
import json, sys, glob
w = sys.argv[1]
res = []
for f in sorted(glob.glob(f"{w}/region/ehr/*.ndjson")):
    res += [json.loads(l) for l in open(f) if l.strip()]
entries, size = [], 0
for r in res:
    s = len(json.dumps(r))
    if size + s > 1_000_000:
        break
    entries.append({"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r})
    size += s
json.dump({"resourceType": "Bundle", "type": "collection", "entry": entries}, open(f"{w}/bundle.json", "w"))
print(f"bundle: {len(entries)} resources, {size} bytes")
PY
fi
PORT=18080
cat > "$W/serve.toml" <<TOML
[server]
bind = "127.0.0.1:$PORT"
history = "$W/history.sqlite"
[[job]]
name = "idle"
kind = "sync"
[job.sync]
register = "samples/handwritten/register.csv"
TOML
$BIN serve --config "$W/serve.toml" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$W/bundle.json" "$PORT" "$C" "$S" "$PID" <<'PY'
import sys, time, threading, http.client
path, port, clients, seconds, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
body = open(path, "rb").read()
lat, errors, lock = [], [0], threading.Lock()
end = time.time() + seconds
def client():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.time() < end:
        t = time.time()
        try:
            c.request("POST", "/fhir/$check?profile=gavleborg&as_of=2026-06-01", body, {"Content-Type": "application/fhir+json"})
            r = c.getresponse(); r.read()
            ok = r.status == 200
        except Exception:
            ok = False
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        with lock:
            if ok: lat.append(time.time() - t)
            else: errors[0] += 1
def mem(field):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(field): return int(l.split()[1]) // 1024
threads = [threading.Thread(target=client) for _ in range(clients)]
t0 = time.time()
[t.start() for t in threads]
samples = []
while any(t.is_alive() for t in threads):
    samples.append(mem("VmRSS:")); time.sleep(1)
[t.join() for t in threads]
wall = time.time() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(f"$check: {clients} clients, {len(body)/1e6:.2f} MB bodies, {wall:.0f} s: {len(lat)} answered, {errors[0]} failed, "
      f"{len(lat)/wall:.1f} req/s, p50 {q(0.5)*1000:.0f} ms, p99 {q(0.99)*1000:.0f} ms")
print(f"serve memory: peak {mem('VmHWM:')} MiB; RSS over the run {min(samples)}–{max(samples)} MiB, at the end {samples[-1]} MiB")
PY
