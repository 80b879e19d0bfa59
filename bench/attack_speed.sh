#!/usr/bin/env bash
# Attack speed (issue 10): ms per attacked example, success rate, passes per example and the
# engine's overhead over its own model calls, for the demo word-cnn on SST-2 dev rows 0-199
# and a char-cnn-lstm on the first 200 AG News test rows, each attack at its defaults and at
# beam 1, the fast path and the host reference path side by side in one run.
# Usage: bench/attack_speed.sh DATA_DIR [--device cpu|cuda] [LIMIT=200]
# Release build. The char model is trained here (10 epochs on ag_news/train.tsv, seed 42)
# unless target/bench-models/agnews-char-cnn-lstm already holds that exact training run;
# its test accuracy is printed beside the figures. Writes bench/results/attack_speed.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/attack_speed.sh DATA_DIR [--device cpu|cuda] [LIMIT]}")
DEVICE=cpu
if [ "${2:-}" = "--device" ]; then DEVICE=${3:?--device cpu|cuda}; shift 2; fi
LIMIT=${2:-200}
RESULTS=bench/results/attack_speed${DEVICE/cpu/}.md
[ "$DEVICE" = cuda ] && RESULTS=bench/results/attack_speed_cuda.md
rm -f "$RESULTS"
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-train -p gauntlet-cli
cargo build --release -q -p gauntlet-backends --example attack_speed
BIN=target/release/examples/attack_speed
OUT=$(realpath -m target/bench-speed); MODELS=$(realpath -m target/bench-models)
rm -rf "$OUT"; mkdir -p "$OUT" "$MODELS"
WORD=models/sst2-word-cnn
CHAR=$MODELS/agnews-char-cnn-lstm
TRAIN_CMD=(target/release/gauntlet-train train --arch char-cnn-lstm --train "$DATA/ag_news/train.tsv"
  --out "$CHAR" --epochs 10 --seed 42 --device "$DEVICE")
# Reuse the char model only if it came from exactly this command.
if ! grep -qF -- "--epochs 10 --seed 42" "$CHAR/gauntlet.toml" 2>/dev/null; then
  "${TRAIN_CMD[@]}" >"$OUT/train-char.log" 2>&1
fi
head -n $((LIMIT + 1)) "$DATA/sst2/dev.tsv" >"$OUT/sst2-dev.tsv"
head -n $((LIMIT + 1)) "$DATA/ag_news/test.tsv" >"$OUT/agnews-test.tsv"
target/release/gauntlet-train eval --model "$CHAR" --data "$DATA/ag_news/test.tsv" --json \
  --device "$DEVICE" >"$OUT/char-eval.json"
target/release/gauntlet-train eval --model "$WORD" --data "$DATA/sst2/dev.tsv" --json \
  --device "$DEVICE" >"$OUT/word-eval.json"

run() { # name bundle data attack beam mode
  "$BIN" "$2" "$3" "$LIMIT" "$4" "$5" "--$6" --device "$DEVICE" >"$OUT/$1.json"
}
for beam in 10 1; do
  run "word-hotflip-b$beam" "$WORD" "$OUT/sst2-dev.tsv" hotflip-word "$beam" both
  run "word-random-gradient-b$beam" "$WORD" "$OUT/sst2-dev.tsv" random-gradient "$beam" both
done
run word-unk-b10 "$WORD" "$OUT/sst2-dev.tsv" unk 10 both
for beam in 10 1; do
  run "char-hotflip-b$beam" "$CHAR" "$OUT/agnews-test.tsv" hotflip-char "$beam" both
done

LOAD=$(uptime)
python3 - "$OUT" "$DEVICE" "$LOAD" "$LIMIT" >"$RESULTS" <<'PY'
import json, pathlib, platform, subprocess, sys
out, device, load, limit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def acc(name):
    return json.loads((out / name).read_text())["accuracy"]
rows = sorted(out.glob("*-b*.json"))
print("# Attack speed (`bench/attack_speed.sh`)\n")
print(f"Build: release (`cargo build --release`), device: {device}, "
      f"{subprocess.check_output(['nproc']).decode().strip()} cores; load while running: `{load.strip()}`.\n")
print(f"Models: demo word-cnn `models/sst2-word-cnn` (SST-2 dev accuracy {acc('word-eval.json'):.2%}) on SST-2 dev rows 0-{int(limit)-1}; "
      f"char-cnn-lstm trained 10 epochs on `ag_news/train.tsv` (test accuracy {acc('char-eval.json'):.2%}) on the first {limit} AG News test rows.\n")
print("`fast`: the default path (word flips scored on the backend's device, lazy constraints); `reference`: the host path "
      "(a full score matrix per state, every edit checked), run right after on the same examples. `model ms`: the same model "
      "calls with the same batch shapes replayed alone; overhead = (attack time − model ms) / model ms.\n")
print("| model | attack | beam | attacked | success (fast) | success (reference) | ms / attacked (fast) | ms / attacked (reference) | speed-up | model ms / attacked | engine overhead | fwd / bwd passes per attacked | same report |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
breakdown = []
order = ["word-hotflip-b10", "word-hotflip-b1", "word-unk-b10", "word-random-gradient-b10",
         "word-random-gradient-b1", "char-hotflip-b10", "char-hotflip-b1"]
for name in order:
    r = json.loads((out / f"{name}.json").read_text())
    ref = r["reference_ms_per_attacked"]
    print(f"| {r['model']} | {r['attack']} | {r['beam']} | {r['attacked']} | {r['success_rate']:.1%} | "
          f"{r['reference_success_rate']:.1%} | {r['ms_per_attacked']:.2f} | {ref:.2f} | {ref / r['ms_per_attacked']:.1f}× | "
          f"{r['model_ms_per_attacked']:.2f} | {r['overhead']:.0%} | {r['forward_per_attacked']:.1f} / {r['backward_per_attacked']:.1f} | "
          f"{'yes' if r['fast_equals_reference'] else 'NO'} |")
    calls = r["model_calls"]
    parts = ", ".join(f"`{kind}` {c['ms'] / r['attacked']:.2f} ms ({c['calls']} calls, {c['states'] / max(c['calls'], 1):.1f} states each)"
                      for kind, c in sorted(calls.items()))
    breakdown.append(f"- {r['model']} {r['attack']} beam {r['beam']}: {parts}")
print("\nWhere the model time goes (fast path, per attacked example; `flips` = forward + backward pass + "
      "vocabulary product + selection of the best flips, `gradients` = forward + backward pass, `predict` = forward pass):\n")
print("\n".join(breakdown))
print("\nCommand: `bench/attack_speed.sh ../shared/data" + (" --device cuda" if device == "cuda" else "") + "`.")
PY
cat "$RESULTS"
