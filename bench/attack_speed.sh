#!/usr/bin/env bash
# Attack speed (issue 10): ms per attacked example, success rate, passes per example and the
# engine's overhead over its own model calls, for the demo word-cnn on SST-2 dev rows 0-199
# and a char-cnn-lstm on the first 200 AG News test rows, each attack at its defaults and at
# beam 1, the fast path and the host reference path side by side in one run.
# Usage: bench/attack_speed.sh DATA_DIR [--device cpu|cuda] [--only word] [LIMIT=200]
# Release build. The char model is trained here (10 epochs on ag_news/train.tsv, seed 42)
# unless target/bench-models/agnews-char-cnn-lstm already holds that exact training run;
# its test accuracy is printed beside the figures. `--only word` runs the word-cnn rows alone
# (no char model to train) and says so in the results. On a CPU, hotflip-word also runs with
# GAUNTLET_SCORING=exact (the fp32 product instead of the bf16 filter) in the same run, and
# hotflip-word and unk with GAUNTLET_FORWARD=product (the word-cnn's forward pass by its
# products and its gradient by autograd, instead of table lookups and the closed form).
# Writes bench/results/attack_speed.md (attack_speed_cuda.md with --device cuda;
# attack_speed_word.md with --only word, so a word-only run never replaces the char rows).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/attack_speed.sh DATA_DIR [--device cpu|cuda] [LIMIT]}")
shift
DEVICE=cpu
ONLY=all
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=${2:?--device cpu|cuda}; shift 2 ;;
    --only) ONLY=${2:?--only word}; shift 2 ;;
    *) break ;;
  esac
done
[ "$ONLY" = all ] || [ "$ONLY" = word ] || { echo "--only takes word, not $ONLY" >&2; exit 2; }
LIMIT=${1:-200}
RESULTS=bench/results/attack_speed${DEVICE/cpu/}.md
[ "$DEVICE" = cuda ] && RESULTS=bench/results/attack_speed_cuda.md
[ "$ONLY" = word ] && RESULTS=${RESULTS%.md}_word.md
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
if [ "$ONLY" = all ]; then
  # Reuse the char model only if it came from exactly this command.
  if ! grep -qF -- "--epochs 10 --seed 42" "$CHAR/gauntlet.toml" 2>/dev/null; then
    "${TRAIN_CMD[@]}" >"$OUT/train-char.log" 2>&1
  fi
  head -n $((LIMIT + 1)) "$DATA/ag_news/test.tsv" >"$OUT/agnews-test.tsv"
  target/release/gauntlet-train eval --model "$CHAR" --data "$DATA/ag_news/test.tsv" --json \
    --device "$DEVICE" >"$OUT/char-eval.json"
fi
head -n $((LIMIT + 1)) "$DATA/sst2/dev.tsv" >"$OUT/sst2-dev.tsv"
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
if [ "$DEVICE" = cpu ]; then
  for beam in 10 1; do
    GAUNTLET_SCORING=exact run "exact-word-hotflip-b$beam" "$WORD" "$OUT/sst2-dev.tsv" hotflip-word "$beam" fast
    run "filter-word-hotflip-b$beam" "$WORD" "$OUT/sst2-dev.tsv" hotflip-word "$beam" fast
  done
fi
for spec in "hotflip-word 10" "hotflip-word 1" "unk 10"; do
  set -- $spec
  GAUNTLET_FORWARD=product run "product-$1-b$2" "$WORD" "$OUT/sst2-dev.tsv" "$1" "$2" fast
  run "lookup-$1-b$2" "$WORD" "$OUT/sst2-dev.tsv" "$1" "$2" fast
done
if [ "$ONLY" = all ]; then
  for beam in 10 1; do
    run "char-hotflip-b$beam" "$CHAR" "$OUT/agnews-test.tsv" hotflip-char "$beam" both
  done
fi
CPU=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
BF16=$(grep -qw avx512_bf16 /proc/cpuinfo && echo yes || echo no)

LOAD=$(uptime)
python3 - "$OUT" "$DEVICE" "$LOAD" "$LIMIT" "$ONLY" "$CPU" "$BF16" >"$RESULTS" <<'PY'
import json, pathlib, platform, subprocess, sys
out, device, load, limit, only, cpu, bf16 = pathlib.Path(sys.argv[1]), *sys.argv[2:8]
def acc(name):
    return json.loads((out / name).read_text())["accuracy"]
rows = sorted(out.glob("*-b*.json"))
print("# Attack speed (`bench/attack_speed.sh`)\n")
print(f"Build: release (`cargo build --release`), device: {device}, "
      f"{subprocess.check_output(['nproc']).decode().strip()} cores ({cpu}; avx512_bf16: {bf16}); load while running: `{load.strip()}`.\n")
char = (f"char-cnn-lstm trained 10 epochs on `ag_news/train.tsv` (test accuracy {acc('char-eval.json'):.2%}) on the first {limit} AG News test rows"
        if only == "all" else "char-cnn-lstm rows not run (`--only word`)")
print(f"Models: demo word-cnn `models/sst2-word-cnn` (SST-2 dev accuracy {acc('word-eval.json'):.2%}) on SST-2 dev rows 0-{int(limit)-1}; {char}.\n")
print("`fast`: the default path (word flips scored on the backend's device, lazy constraints); `reference`: the host path "
      "(a full score matrix per state, every edit checked), run right after on the same examples. `model ms`: the same model "
      "calls with the same batch shapes replayed alone; overhead = (attack time − model ms) / model ms. Each run follows a warm-up "
      "attack on 8 examples; a fast run shorter than 5 s is repeated three times and the median run reported.\n")
print("| model | attack | beam | attacked | success (fast) | success (reference) | ms / attacked (fast) | ms / attacked (reference) | speed-up | model ms / attacked | engine overhead | fwd / bwd passes per attacked | same report |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
breakdown = []
order = ["word-hotflip-b10", "word-hotflip-b1", "word-unk-b10", "word-random-gradient-b10",
         "word-random-gradient-b1"] + (["char-hotflip-b10", "char-hotflip-b1"] if only == "all" else [])
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
if device == "cpu":
    print("\nThe bf16 filter (`crates/gauntlet-tch/src/bf16_filter.rs`; on only where the CPU has avx512_bf16) against the exact "
          "fp32 vocabulary product (`GAUNTLET_SCORING=exact`), hotflip-word fast path, run back to back in this run:\n")
    print("| beam | ms / attacked (exact fp32) | ms / attacked (bf16 filter) | speed-up | `flips` ms / attacked (exact) | `flips` ms / attacked (filter) | same success |")
    print("|---|---|---|---|---|---|---|")
    for beam in (10, 1):
        e, f = (json.loads((out / f"{m}-word-hotflip-b{beam}.json").read_text()) for m in ("exact", "filter"))
        fe, ff = (r["model_calls"]["flips"]["ms"] / r["attacked"] for r in (e, f))
        print(f"| {beam} | {e['ms_per_attacked']:.2f} | {f['ms_per_attacked']:.2f} | {e['ms_per_attacked'] / f['ms_per_attacked']:.2f}× | "
              f"{fe:.2f} | {ff:.2f} | {'yes' if e['success_rate'] == f['success_rate'] else 'NO'} |")
print("\nThe word-cnn's passes by table lookup and closed-form gradient (`crates/gauntlet-models/src/lookup_forward.rs`) against its "
      "products and autograd (`GAUNTLET_FORWARD=product`), fast path, run back to back in this run (gradient calls: `flips` for "
      "hotflip-word, `gradients` for unk):\n")
print("| attack | beam | ms / attacked (product) | ms / attacked (lookup) | speed-up | `predict` ms / attacked (product) | `predict` ms / attacked (lookup) | gradient calls ms / attacked (autograd) | gradient calls ms / attacked (closed form) | same success |")
print("|---|---|---|---|---|---|---|---|---|---|")
for attack, beam in (("hotflip-word", 10), ("hotflip-word", 1), ("unk", 10)):
    p, l = (json.loads((out / f"{m}-{attack}-b{beam}.json").read_text()) for m in ("product", "lookup"))
    pp, pl = (r["model_calls"]["predict"]["ms"] / r["attacked"] for r in (p, l))
    kind = "flips" if attack == "hotflip-word" else "gradients"
    gp, gl = (r["model_calls"][kind]["ms"] / r["attacked"] for r in (p, l))
    print(f"| {attack} | {beam} | {p['ms_per_attacked']:.2f} | {l['ms_per_attacked']:.2f} | {p['ms_per_attacked'] / l['ms_per_attacked']:.2f}× | "
          f"{pp:.2f} | {pl:.2f} | {gp:.2f} | {gl:.2f} | {'yes' if p['success_rate'] == l['success_rate'] else 'NO'} |")
flags = (" --device cuda" if device == "cuda" else "") + (" --only word" if only == "word" else "")
print(f"\nCommand: `bench/attack_speed.sh ../shared/data{flags}`.")
PY
cat "$RESULTS"
