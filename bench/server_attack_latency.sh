#!/usr/bin/env bash
# Issue 10: latency of the server's synchronous attack (POST /v1/attacks) on one sentence,
# hotflip-word at its defaults and unk, one client, keep-alive, on the release server with
# the demo model; each request attacks one SST-2 dev sentence (rows 0..N-1, the true label).
# Usage: bench/server_attack_latency.sh DATA_DIR [REQUESTS=200]
# Writes bench/results/server_attack_latency.md; any failed step or non-200 answer fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/server_attack_latency.sh DATA_DIR [REQUESTS]}")
N=${2:-200}
RESULTS=bench/results/server_attack_latency.md
MODEL=sst2-word-cnn
rm -f "$RESULTS"
command -v curl >/dev/null || { echo "curl is missing: apt-get install -y curl" >&2; exit 1; }
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-server
BIN="${CARGO_TARGET_DIR:-target}/release/gauntlet-server"
WORK=$(mktemp -d)
PID=""
cleanup() {
  local status=0
  if [ -n "$PID" ]; then kill "$PID"; wait "$PID" || status=$?; fi
  # actix stops gracefully on SIGTERM (0); 143 is a plain SIGTERM death.
  if [ "$status" != 0 ] && [ "$status" != 143 ]; then echo "the server exited with $status" >&2; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GAUNTLET__SERVER__LOG=warn ${SERVER_ENV:-} "$BIN" --bind "127.0.0.1:$PORT" --models-dir models \
  --default-model "$MODEL" --data-dir "$WORK/data" --wordnet off >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 600); do
  if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; then break; fi
  kill -0 "$PID" || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null
LOAD=$(uptime)
python3 - "$PORT" "$DATA/sst2/dev.tsv" "$N" "$LOAD" >"$RESULTS" <<'PY'
import http.client, json, statistics, sys, time
port, data, n, load = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = [l.rstrip("\n").split("\t", 1) for l in open(data, encoding="utf-8").readlines()[1:n + 1]]
conn = http.client.HTTPConnection("127.0.0.1", port)
def post(body):
    conn.request("POST", "/v1/attacks", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse(); payload = r.read()
    if r.status != 200:
        sys.exit(f"POST /v1/attacks answered {r.status}: {payload[:300]!r}")
    return json.loads(payload)
print("# Server: synchronous attack latency (`bench/server_attack_latency.sh`)\n")
print(f"Release build, CPU, demo model `models/sst2-word-cnn`, one keep-alive client on 127.0.0.1, "
      f"{n} requests per attack, each one SST-2 dev sentence (rows 0-{n-1}) with its true label. "
      f"Load while running: `{load.strip()}`.\n")
print("| attack | requests | attacked | fooled | p50 ms | p90 ms | p99 ms |")
print("|---|---|---|---|---|---|---|")
for kind in ["hotflip-word", "unk"]:
    post({"attack": {"kind": kind}, "examples": [{"text": rows[0][1], "label": int(rows[0][0])}]})
    times, attacked, fooled = [], 0, 0
    for label, text in rows:
        t = time.perf_counter()
        report = post({"attack": {"kind": kind}, "examples": [{"text": text, "label": int(label)}]})
        times.append((time.perf_counter() - t) * 1000)
        s = report["summary"]
        attacked += s["attacked"]; fooled += round(s["success_rate"] * s["attacked"])
    q = statistics.quantiles(times, n=100)
    print(f"| {kind} | {len(times)} | {attacked} | {fooled} | {statistics.median(times):.2f} | {q[89]:.2f} | {q[98]:.2f} |")
print(f"\nCommand: `bench/server_attack_latency.sh ../shared/data {n}`. The time is the whole request: "
      "HTTP, JSON, encoding, the clean pass (a misclassified sentence is skipped after it) and the attack.")
PY
cat "$RESULTS"
