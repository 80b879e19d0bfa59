#!/usr/bin/env bash
# Issue 10, item 6: single-text POST /v1/models/{name}/predict under load, with dynamic
# batching off, on without waiting (max_wait_us = 0, the default) and on with a 1 ms wait,
# side by side in one run. The release server serves the demo model models/sst2-word-cnn on
# 127.0.0.1 only; wrk (Debian package `wrk`) drives it at 1, 8 and 64 connections.
# Usage: bench/predict_load.sh [SECONDS_PER_RUN] (default 10).
# Writes bench/results/predict_load.md; any failed step (or any failed request) fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
RESULTS=bench/results/predict_load.md
MODEL=sst2-word-cnn
TEXT="a gripping , funny and ultimately moving film"
rm -f "$RESULTS"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install -y curl" >&2; exit 1; }
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-server
BIN="${CARGO_TARGET_DIR:-target}/release/gauntlet-server"

WORK=$(mktemp -d)
PID=""
stop_server() {
  local status=0
  kill "$PID"
  wait "$PID" || status=$?
  PID=""
  # actix stops gracefully on SIGTERM (0); 143 is a plain SIGTERM death.
  if [ "$status" != 0 ] && [ "$status" != 143 ]; then
    echo "the server exited with status $status" >&2
    return 1
  fi
}
cleanup() {
  if [ -n "$PID" ]; then stop_server; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
cat >"$WORK/predict.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"texts": ["$TEXT"]}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, failed))
end
EOF

# start_server MODE: off | wait0 | wait1000
start_server() {
  local enabled=true wait=0
  case "$1" in
    off) enabled=false ;;
    wait0) ;;
    wait1000) wait=1000 ;;
  esac
  GAUNTLET__SERVER__LOG=warn GAUNTLET__BATCHING__ENABLED=$enabled GAUNTLET__BATCHING__MAX_WAIT_US=$wait \
    "$BIN" --bind "127.0.0.1:$PORT" --models-dir models --default-model "$MODEL" \
    --data-dir "$WORK/data" --wordnet off >"$WORK/server-$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    if curl -sf "$URL/readyz" >/dev/null; then break; fi
    kill -0 "$PID" || { cat "$WORK/server-$1.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "$URL/readyz" >/dev/null
  # One request whose answer must be a prediction.
  curl -sf -H 'content-type: application/json' -d "{\"texts\": [\"$TEXT\"]}" \
    "$URL/v1/models/$MODEL/predict" | grep -q '"predictions":\[{"label"'
}

LOAD_BEFORE=$(uptime)
ROWS=()
for mode in off wait0 wait1000; do
  start_server "$mode"
  DEVICE=$(curl -sf "$URL/v1/models/$MODEL" | python3 -c 'import json, sys; print(json.load(sys.stdin)["device"])')
  wrk -t 2 -c 8 -d 2s -s "$WORK/predict.lua" "$URL/v1/models/$MODEL/predict" >/dev/null # warm-up
  for conns in 1 8 64; do
    threads=$((conns < 2 ? 1 : 2))
    cmd="wrk -t $threads -c $conns -d ${DURATION}s --latency -s predict.lua $URL/v1/models/$MODEL/predict"
    before=$(curl -sf "$URL/metrics" | awk '/^gauntlet_predict_batch_texts_(sum|count)/ { printf "%s ", $2 }')
    out=$(wrk -t "$threads" -c "$conns" -d "${DURATION}s" --latency -s "$WORK/predict.lua" \
      "$URL/v1/models/$MODEL/predict")
    after=$(curl -sf "$URL/metrics" | awk '/^gauntlet_predict_batch_texts_(sum|count)/ { printf "%s ", $2 }')
    read -r _ rps p50 p99 total failed <<<"$(grep '^RESULT' <<<"$out")"
    if [ "$failed" != 0 ]; then
      echo "$mode, $conns connections: $failed of $total requests failed" >&2
      echo "$out" >&2
      exit 1
    fi
    texts_per_call=$(awk -v b="$before" -v a="$after" 'BEGIN {
      split(b, x, " "); split(a, y, " "); c = y[2] - x[2];
      if (c > 0) printf "%.2f", (y[1] - x[1]) / c; else print "-" }')
    case "$mode" in
      off) label="off (\`batching.enabled = false\`)" ;;
      wait0) label="on, \`max_wait_us = 0\` (default)" ;;
      wait1000) label="on, \`max_wait_us = 1000\`" ;;
    esac
    ROWS+=("| $label | $conns | $rps | $p50 | $p99 | $texts_per_call | $total |")
    echo "$mode c=$conns: $rps req/s, p50 $p50 ms, p99 $p99 ms, $texts_per_call texts per model call" >&2
    if [ "$mode" = wait0 ] && [ "$conns" = 64 ]; then TARGET_RPS=$rps TARGET_P99=$p99; fi
    LAST_CMD=$cmd
  done
  stop_server
done
LOAD_AFTER=$(uptime)

met=$(awk -v r="$TARGET_RPS" -v p="$TARGET_P99" 'BEGIN { print (r >= 5000 && p <= 20) ? "met" : "not met" }')
{
  echo "# Single-text predict under load, dynamic batching off and on ($(date -u +%F))"
  echo
  echo "- Build: \`cargo build --release -p gauntlet-server\` (release profile), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates config || echo ' plus uncommitted changes')."
  echo "- Model: \`models/$MODEL\` on device \`$DEVICE\`; server defaults otherwise (\`server.http_workers = 2\`, \`batching.max_batch_texts = 64\`, \`batching.queue_capacity = 1024\`)."
  echo "- Machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') runs on the same cores, over loopback."
  echo "- Load before: \`$LOAD_BEFORE\`; after: \`$LOAD_AFTER\`."
  echo "- Body: \`{\"texts\": [\"$TEXT\"]}\`; each run ${DURATION} s after a 2 s warm-up per server, e.g. \`$LAST_CMD\` (\`predict.lua\` sets the POST body); servers started with \`GAUNTLET__BATCHING__ENABLED\` and \`GAUNTLET__BATCHING__MAX_WAIT_US\`."
  echo "- Texts per model call: from \`gauntlet_predict_batch_texts\` over each run."
  echo
  echo "| batching | connections | req/s | p50 ms | p99 ms | texts per model call | requests |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Target (issue 10): at 64 connections with the default batching (\`max_wait_us = 0\`), ≥ 5,000 req/s and p99 ≤ 20 ms: **$met** ($TARGET_RPS req/s, p99 $TARGET_P99 ms)."
} >"$RESULTS"
cat "$RESULTS"
