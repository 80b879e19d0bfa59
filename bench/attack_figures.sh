#!/usr/bin/env bash
# Issue-3 figures: every attack on a word model (SST-2) and on a character model
# (AG News), side by side in one run, through `gauntlet run` spec files.
# Usage: bench/attack_figures.sh DATA_DIR WORD_MODEL CHAR_MODEL [WORD_LIMIT CHAR_LIMIT LOSS_BEAM_LIMIT]
# Writes the reports under target/bench-attacks/ and a summary to bench/results/attacks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/attack_figures.sh DATA_DIR WORD_MODEL CHAR_MODEL}")
WORD_MODEL=$(realpath "${2:?word model bundle}")
CHAR_MODEL=$(realpath "${3:?char model bundle}")
WORD_LIMIT=${4:-500} CHAR_LIMIT=${5:-200} LOSS_BEAM_LIMIT=${6:-30}
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-cli
OUT=$(realpath -m target/bench-attacks); mkdir -p "$OUT"

cat >"$OUT/word.toml" <<SPEC
model = "$WORD_MODEL"
data = "$DATA/sst2/test.tsv"
limit = $WORD_LIMIT
seed = 0
device = "cpu"
out_dir = "$OUT/word"
formats = ["json"]
[[attack]]
kind = "hotflip-word"
[[attack]]
kind = "unk"
[[attack]]
kind = "sem"
[[attack]]
kind = "random"
counts_from = "hotflip-word"
[[attack]]
kind = "random-gradient"
SPEC
cat >"$OUT/char.toml" <<SPEC
model = "$CHAR_MODEL"
data = "$DATA/ag_news/test.tsv"
limit = $CHAR_LIMIT
seed = 0
device = "cpu"
out_dir = "$OUT/char"
formats = ["json"]
[[attack]]
kind = "hotflip-char"
[[attack]]
kind = "random"
counts_from = "hotflip-char"
[[attack]]
kind = "random-gradient"
SPEC
# The exact loss-based reference (paper Table 2) is costly: fewer examples, a sampled
# candidate set, and the gradient search rerun on exactly the same examples.
cat >"$OUT/char-table2.toml" <<SPEC
model = "$CHAR_MODEL"
data = "$DATA/ag_news/test.tsv"
limit = $LOSS_BEAM_LIMIT
seed = 0
device = "cpu"
out_dir = "$OUT/char-table2"
formats = ["json"]
[[attack]]
kind = "hotflip-char"
beam = 5
[[attack]]
kind = "loss-beam"
beam = 5
candidates_cap = 300
SPEC
for spec in word char char-table2; do
  target/release/gauntlet run --spec "$OUT/$spec.toml" >"$OUT/$spec.log" 2>&1 \
    || { echo "gauntlet run $spec failed:"; cat "$OUT/$spec.log"; exit 1; }
done

python3 - "$OUT" >bench/results/attacks.md <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("# Attack figures (CPU, 2 cores; `bench/attack_figures.sh`)\n")
print("| model | attack | attacked | skipped | success τ=0.5 | success τ=0.9 | 1 / 2 / 3+ changes | mean frac. changed | mean fwd+bwd passes | ms / example | examples/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for group in ["word", "char", "char-table2"]:
    for path in sorted((out / group).glob("*.json")):
        if path.name == "summary.json":
            continue
        r = json.loads(path.read_text()); s = r["summary"]
        curve = {round(c["confidence"], 2): c["success_rate"] for c in s["curve"]}
        h = s["changes_histogram"]
        attacked = max(s["attacked"], 1)
        ms = s["wall_time_ms"] / attacked
        print(f"| {group} | {r['config']['kind']} | {s['attacked']} | {s['skipped']} | {curve.get(0.5, 0)*100:.1f}% | {curve.get(0.9, 0)*100:.1f}% "
              f"| {h['one']} / {h['two']} / {h['three_or_more']} | {s['mean_fraction_changed']*100:.1f}% "
              f"| {s['mean_forward_passes']+s['mean_backward_passes']:.1f} | {ms:.0f} | {s['examples_per_second']:.2f} |")
PY
cat bench/results/attacks.md
