#!/usr/bin/env bash
# Issue 13: what resumable jobs cost and what a crash costs. A 1,000-example hotflip-word
# audit of the demo model (SST-2 test rows 0..999, beam 10, budget 2, seed 0, the plan of
# bench/shard_audit.sh) run side by side:
#   (a) `gauntlet run` (the CLI: the same engine, no checkpoints);
#   (b) the server at the default scheduler.checkpoint_interval_ms = 2000;
#   (c) the server at checkpoint_interval_ms = 1 (a checkpoint after every beam step that
#       finished an example: the worst case);
#   (d) the server at the default, killed with SIGKILL half-way, restarted, resumed;
#   (e) the server at the default, sent SIGTERM half-way: time to exit.
# The reports of (b), (c) and (d) must equal (a)'s in every field but wall times, or the
# script fails. Usage: bench/checkpoint.sh DATA_DIR. Writes bench/results/checkpoint.md
# (release build, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/checkpoint.sh DATA_DIR}")
RESULTS=bench/results/checkpoint.md
rm -f "$RESULTS"
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-cli --bin gauntlet -p gauntlet-server --bin gauntlet-server
TARGET="${CARGO_TARGET_DIR:-target}/release"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=18731
MODEL=$(realpath models/sst2-word-cnn)
cat >"$WORK/spec.toml" <<TOML
model = "$MODEL"
data = "$DATA/sst2/test.tsv"
limit = 1000
seed = 0
device = "cpu"
[[attack]]
kind = "hotflip-word"
beam = 10
budget = 2
TOML
PLAN='{"attacks": [{"kind": "hotflip-word", "beam": 10, "budget": 2}], "dataset": {"name": "test.tsv"}, "limit": 1000, "seed": 0}'
now() { python3 -c 'import time; print(time.monotonic())'; }
api() { curl -sf "http://127.0.0.1:$PORT$1" "${@:2}"; }

start_server() { # DATA_DIR INTERVAL_MS
  mkdir -p "$1/datasets"
  cp "$DATA/sst2/test.tsv" "$1/datasets/test.tsv"
  cat >"$1/server.toml" <<TOML
[server]
bind = "127.0.0.1:$PORT"
log = "warn"
[models]
dir = "$(dirname "$MODEL")"
default_model = "$(basename "$MODEL")"
device = "cpu"
[data]
dir = "$1"
[attacks]
wordnet = "off"
[scheduler]
checkpoint_interval_ms = $2
TOML
  GAUNTLET__SERVER__LOG=warn "$TARGET/gauntlet-server" --config "$1/server.toml" 2>>"$1/server.log" &
  SERVER_PID=$!
  for _ in $(seq 600); do api /readyz >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the server did not become ready" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; SERVER_PID=""; }
submit() { api /v1/audits -H 'content-type: application/json' -d "$PLAN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
state() { api "/v1/audits/$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j["progress"]["done"], j["checkpoint_at_ms"] is not None)'; }
wait_done() {
  while :; do
    read -r s d c < <(state "$1")
    # Polls are rare: each costs a curl and a python3 start on the 2 cores the job runs on.
    case "$s" in succeeded) return 0 ;; queued|running) sleep 1 ;; *) echo "job $1 ended $s" >&2; exit 1 ;; esac
  done
}
wait_half() { # until 500 examples are checkpointed
  while :; do
    read -r s d c < <(state "$1")
    [ "$s" = running ] && [ "$d" -ge 500 ] && [ "$c" = True ] && return 0
    [ "$s" = queued ] || [ "$s" = running ] || { echo "job $1 ended $s before half-way" >&2; exit 1; }
    sleep 0.25
  done
}
# "seconds checkpoints results" from the server's Prometheus metrics.
ckpt() { api /metrics | python3 -c '
import sys
m = {l.split()[0]: float(l.split()[1]) for l in sys.stdin if l.startswith("gauntlet_checkpoint_")}
print(m["gauntlet_checkpoint_seconds_sum"], int(m["gauntlet_checkpoint_seconds_count"]), int(m["gauntlet_checkpoint_results_total"]))'; }
job_wall() { api "/v1/audits/$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print((j["finished_at_ms"]-j["started_at_ms"])/1000)'; }

LOAD_BEFORE=$(uptime)
t0=$(now)
"$TARGET/gauntlet" run --spec "$WORK/spec.toml" --threads 2 --out-dir "$WORK/cli" 2>"$WORK/cli.log"
t1=$(now)

start_server "$WORK/b" 2000
ID_B=$(submit); wait_done "$ID_B"; WALL_B=$(job_wall "$ID_B")
api "/v1/audits/$ID_B/report" >"$WORK/b.json"
BYTES_B=$(stat -c %s "$WORK/b/jobs/$ID_B.results.jsonl")
CKPT_B=$(ckpt)
stop_server

start_server "$WORK/c" 1
ID_C=$(submit); wait_done "$ID_C"; WALL_C=$(job_wall "$ID_C")
api "/v1/audits/$ID_C/report" >"$WORK/c.json"
CKPT_C=$(ckpt)
stop_server

start_server "$WORK/d" 2000
ID_D=$(submit); td0=$(now); wait_half "$ID_D"
kill -9 "$SERVER_PID"; RC_D=0; wait "$SERVER_PID" || RC_D=$?; SERVER_PID=""
# 137 = killed by SIGKILL; anything else means the server had already died.
[ "$RC_D" = 137 ] || { echo "the server exited $RC_D before kill -9" >&2; exit 1; }
start_server "$WORK/d" 2000
wait_done "$ID_D"; td1=$(now)
api "/v1/audits/$ID_D/report" >"$WORK/d.json"
RESUMED_D=$(api "/v1/audits/$ID_D" | python3 -c 'import json,sys; print(json.load(sys.stdin)["resumed"])')
LINES_D=$(wc -l <"$WORK/d/jobs/$ID_D.results.jsonl")
stop_server

start_server "$WORK/e" 2000
ID_E=$(submit); wait_half "$ID_E"
te0=$(now); kill -TERM "$SERVER_PID"; RC_E=0; wait "$SERVER_PID" || RC_E=$?; te1=$(now); SERVER_PID=""
LOAD_AFTER=$(uptime)

python3 - "$WORK" "$t0" "$t1" "$WALL_B" "$WALL_C" "$td0" "$td1" "$te0" "$te1" "$RC_E" \
  "$BYTES_B" "$RESUMED_D" "$LINES_D" "$LOAD_BEFORE" "$LOAD_AFTER" "$CKPT_B" "$CKPT_C" >"$RESULTS" <<'PY'
import json, sys
work = sys.argv[1]
t0, t1, wall_b, wall_c, td0, td1, te0, te1 = map(float, sys.argv[2:10])
rc_e, bytes_b, resumed_d, lines_d = map(int, sys.argv[10:14])
load_before, load_after = sys.argv[14], sys.argv[15]
ckpt = {}
for name, text in [("b", sys.argv[16]), ("c", sys.argv[17])]:
    secs, count, results = text.split()
    ckpt[name] = (float(secs), int(count), int(results))
read = lambda p: json.load(open(f"{work}/{p}", encoding="utf-8"))
cli, b, c, d = read("cli/audit.json"), read("b.json"), read("c.json"), read("d.json")
def strip(v):
    if isinstance(v, dict):
        return {k: (0 if k in ("wall_time_ms", "examples_per_second") else strip(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
for name, r in [("b", b), ("c", c), ("d", d)]:
    if strip(r) != strip(cli):
        sys.exit(f"report ({name}) differs from the CLI's")
if rc_e != 0 or resumed_d != 1 or lines_d != 1000:
    sys.exit(f"SIGTERM exit {rc_e}, resumed {resumed_d}, result lines {lines_d}")
s = cli["attacks"][0]["report"]["summary"]
print("# Checkpoints, crashes and graceful stops (`bench/checkpoint.sh`)\n")
print("Issue 13. A 1,000-example `hotflip-word` audit (beam 10, budget 2, seed 0) of the demo model")
print("(`models/sst2-word-cnn`) on SST-2 `test.tsv` rows 0..999, run side by side in one script.\n")
print("- Build: `cargo build --release` (profile `release`); device: CPU, the 2 cores of this machine.")
print("- Commands: `gauntlet run --spec S --threads 2`; `gauntlet-server --config C` with")
print("  `scheduler.checkpoint_interval_ms` 2000 (default) or 1, and `POST /v1/audits` of the same plan;")
print("  `kill -9` / `kill -TERM` of the server once 500 examples are checkpointed.")
print(f"- Load before: `{load_before.strip()}`; after: `{load_after.strip()}`.")
print(f"- Clean accuracy {s['clean_accuracy']:.4f}, success rate {s['success_rate']:.4f} (the demo model is converged).\n")
print("| run | wall time (s) | ratio to (b) |")
print("|---|---:|---:|")
rows = [("(a) CLI, no checkpoints", t1 - t0), ("(b) server, checkpoint every 2 s (default)", wall_b),
        ("(c) server, checkpoint after every step (interval 1 ms)", wall_c),
        ("(d) server, kill -9 at 500 examples, restart, resume (wall clock incl. restart)", td1 - td0)]
for name, t in rows:
    print(f"| {name} | {t:.2f} | {t / wall_b:.3f} |")
print()
print("Checkpoint cost, from the server's own metrics (`gauntlet_checkpoint_seconds`, `gauntlet_checkpoint_results_total`):\n")
print("| run | checkpoints | results | time in checkpoints (ms) | per checkpoint (ms) | per example (ms) | share of the job |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, wall in [("b", wall_b), ("c", wall_c)]:
    secs, count, results = ckpt[name]
    print(f"| ({name}) | {count} | {results} | {secs * 1000:.1f} | {secs * 1000 / count:.2f} | "
          f"{secs * 1000 / results:.3f} | {secs / wall * 100:.2f}% |")
print()
print(f"- Results file: {bytes_b} bytes, {bytes_b / 1000:.0f} bytes per example.")
print(f"- (d) resumed once, its results file holds {lines_d} lines (each example attacked once), and its report equals (a)'s.")
print(f"- SIGTERM to exit at 500 examples: {(te1 - te0) * 1000:.0f} ms, exit code {rc_e}.")
print("- (a) runs in the CLI's process (model load included); (b)–(c) are the job's own wall time on the server.")
print("- Reports (b), (c), (d) equal (a) in every field but wall times (checked by the script).")
PY
cat "$RESULTS"
