#!/usr/bin/env bash
# Issue 11: a 1,000-example hotflip-word audit of the demo model (SST-2 test rows 0..999,
# beam 10, budget 2, seed 0), run (a) as one process with 2 libtorch threads, (b) as one
# process with 1 thread, and (c) as 2 shards (`--shard 0/2`, `--shard 1/2`) run as two
# processes at once with 1 thread each, then merged; the merged report must equal (a) in
# every field but wall times, or the script fails.
# Usage: bench/shard_audit.sh DATA_DIR
# Writes bench/results/shard_audit.md (release build, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/shard_audit.sh DATA_DIR}")
RESULTS=bench/results/shard_audit.md
rm -f "$RESULTS"
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-cli --bin gauntlet
BIN="${CARGO_TARGET_DIR:-target}/release/gauntlet"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/gauntlet-audit.toml" <<TOML
model = "$(realpath models/sst2-word-cnn)"
data = "$DATA/sst2/test.tsv"
limit = 1000
seed = 0
device = "cpu"
[[attack]]
kind = "hotflip-word"
beam = 10
budget = 2
TOML
now() { python3 -c 'import time; print(time.monotonic())'; }
LOAD_BEFORE=$(uptime)
t0=$(now)
"$BIN" run --spec "$WORK/gauntlet-audit.toml" --threads 2 --out-dir "$WORK/whole" 2>"$WORK/whole.log"
t1=$(now)
"$BIN" run --spec "$WORK/gauntlet-audit.toml" --threads 1 --out-dir "$WORK/whole1" 2>"$WORK/whole1.log"
t2=$(now)
"$BIN" run --spec "$WORK/gauntlet-audit.toml" --threads 1 --shard 0/2 --out-dir "$WORK/shard-0" 2>"$WORK/s0.log" &
P0=$!
"$BIN" run --spec "$WORK/gauntlet-audit.toml" --threads 1 --shard 1/2 --out-dir "$WORK/shard-1" 2>"$WORK/s1.log" &
P1=$!
wait "$P0"
wait "$P1"
t3=$(now)
"$BIN" merge "$WORK/shard-1/audit.json" "$WORK/shard-0/audit.json" --out "$WORK/merged.json" 2>"$WORK/merge.log"
t4=$(now)
LOAD_AFTER=$(uptime)
python3 - "$WORK" "$t0" "$t1" "$t2" "$t3" "$t4" "$LOAD_BEFORE" "$LOAD_AFTER" >"$RESULTS" <<'PY'
import json, sys
work, t0, t1, t2, t3, t4 = sys.argv[1], *map(float, sys.argv[2:7])
load_before, load_after = sys.argv[7], sys.argv[8]
read = lambda p: json.load(open(f"{work}/{p}", encoding="utf-8"))
whole, whole1, merged = read("whole/audit.json"), read("whole1/audit.json"), read("merged.json")
shards = [read(f"shard-{i}/audit.json") for i in range(2)]
def strip(v):
    if isinstance(v, dict):
        return {k: (0 if k in ("wall_time_ms", "examples_per_second") else strip(x))
                for k, x in v.items() if k != "merged_from"}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
def diff(a, b, path="$"):
    if type(a) is not type(b):
        return [path]
    if isinstance(a, dict):
        return [d for k in sorted(set(a) | set(b)) for d in diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path} (length)"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]
merged_diff = diff(strip(merged), strip(whole))
threads_diff = diff(strip(whole1), strip(whole))
s = whole["attacks"][0]["report"]["summary"]
print("# Sharded audit vs one process (`bench/shard_audit.sh`)\n")
print("Issue 11. A 1,000-example `hotflip-word` audit (beam 10, budget 2, seed 0) of the demo")
print("model (`models/sst2-word-cnn`) on SST-2 `test.tsv` rows 0..999.\n")
print("- Build: `cargo build --release` (profile `release`); device: CPU, the 2 cores of this machine.")
print("- Commands: `gauntlet run --spec S --threads 2`; `gauntlet run --spec S --threads 1`;")
print("  `gauntlet run --spec S --threads 1 --shard I/2` for I = 0, 1 started together;")
print("  `gauntlet merge shard-1/audit.json shard-0/audit.json --out merged.json`.")
print(f"- Load before: `{load_before.strip()}`; after: `{load_after.strip()}`.\n")
print(f"Clean accuracy {100 * s['clean_accuracy']:.2f}% ({s['examples']} examples, {s['attacked']} attacked); "
      f"success rate {100 * s['success_rate']:.2f}%, accuracy under attack {100 * s['accuracy_under_attack']:.2f}%.\n")
print("| run | wall time (s) | vs one process, 2 threads |")
print("|---|---|---|")
rows = [("one process, 2 threads", t1 - t0), ("one process, 1 thread", t2 - t1),
        ("2 shards at once, 1 thread each (both done)", t3 - t2), ("merge of the 2 shard reports", t4 - t3)]
for name, t in rows:
    print(f"| {name} | {t:.2f} | {t / (t1 - t0):.2f}× |")
for i, sh in enumerate(shards):
    print(f"\nShard {i}/2: {sh['attacks'][0]['report']['summary']['examples']} examples, "
          f"engine wall time {sh['wall_time_ms'] / 1000:.2f} s.", end="")
print("\n")
print(f"Merged report vs one process, every field but wall times: "
      f"{'**equal**' if not merged_diff else 'DIFFERENT at ' + ', '.join(merged_diff[:10])}.  ")
print(f"One process with 1 thread vs 2 threads, same comparison: "
      f"{'**equal**' if not threads_diff else 'different at ' + str(len(threads_diff)) + ' places, e.g. ' + ', '.join(threads_diff[:5])}.")
if merged_diff:
    sys.exit("the merged report differs from the one-process report")
PY
cat "$RESULTS"
