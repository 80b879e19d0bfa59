#!/usr/bin/env bash
# HotFlip on a subword (WordPiece) transformer: trains a small BERT-style classifier on SST-2
# from scratch (tools/fixtures/train_tiny_bert.py, CPU, time-boxed), bundles it as an ONNX
# bundle, and audits it with `gauntlet audit`: hotflip-word (default beam), unk, and random
# (as many changes per example as HotFlip made).
# Usage: bench/bert_hotflip.sh DATA_DIR [LIMIT=100] [MINUTES=5]
# Writes the bundle and reports under target/bench-bert/ and a summary to
# bench/results/bert_hotflip.md. The summary also checks that Gauntlet's Rust tokenizer and
# ONNX Runtime backend agree with the Python pipeline the model was trained with: the
# clean probabilities in the reports are recomputed in Python and compared.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/bert_hotflip.sh DATA_DIR [LIMIT] [MINUTES]}")
LIMIT=${2:-100} MINUTES=${3:-5}
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-cli
PYTHON=${GAUNTLET_CACHE:-$HOME/.cache/gauntlet}/venv/bin/python
OUT=$(realpath -m target/bench-bert); BUNDLE=$OUT/tiny-bert-sst2
rm -rf "$OUT"; mkdir -p "$OUT"

"$PYTHON" -W ignore tools/fixtures/train_tiny_bert.py "$DATA" "$BUNDLE" --minutes "$MINUTES" \
  2>&1 | tee "$OUT/train.log"

for attack in hotflip-word unk random; do
  extra=()
  # Random flips get HotFlip's change count per example, as in bench/attack_figures.sh.
  [ "$attack" = random ] && extra=(--random-counts-from "$OUT/hotflip-word.json")
  target/release/gauntlet audit --model "$BUNDLE" --data "$DATA/sst2/test.tsv" \
    --attack "$attack" --limit "$LIMIT" --device cpu --seed 0 \
    --out "$OUT/$attack.json" "${extra[@]}" >"$OUT/$attack.log" 2>&1 \
    || { echo "audit $attack failed:"; cat "$OUT/$attack.log"; exit 1; }
done

# Where hotflip-word's time goes: the same attack (default beam 10) through the attack_speed
# example, which times every model call, replays them alone (engine overhead) and splits the
# tch interpreter's time by operator.
cargo build --release -q -p gauntlet-backends --example attack_speed
target/release/examples/attack_speed "$BUNDLE" "$DATA/sst2/test.tsv" "$LIMIT" hotflip-word 10 \
  >"$OUT/speed.json" 2>"$OUT/speed.log" || { echo "attack_speed failed:"; cat "$OUT/speed.log"; exit 1; }

"$PYTHON" - "$OUT" "$DATA" "$LIMIT" >"$OUT/bert_hotflip.md" <<'PY'
import json, pathlib, sys, tomllib
import numpy as np, onnxruntime as ort
sys.path.insert(0, "tools/fixtures")
from train_tiny_bert import WordPieceTokenizer, pad_batch, read_tsv
out, data, limit = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
bundle = out / "tiny-bert-sst2"
manifest = tomllib.loads((bundle / "gauntlet.toml").read_text())
hp, tr = manifest["hyper_parameters"], manifest["training"]
reports = {}
for attack in ["hotflip-word", "unk", "random"]:
    path = out / f"{attack}.json"
    if path.exists():
        # `gauntlet audit` writes an audit report; its one attack's report is what we read.
        reports[attack] = json.loads(path.read_text())["attacks"][0]["report"]

# The Python pipeline the model was trained with, on the same test examples.
tokenizer = WordPieceTokenizer.from_json(bundle / "tokenizer.json")
session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
labels, texts = read_tsv(data / "sst2" / "test.tsv")
encoded = [tokenizer.encode(t, manifest["tokenization"]["max_length"]) for t in texts]
probs = []
for i in range(0, len(encoded), 256):
    feeds = {k: v.numpy() for k, v in pad_batch(encoded[i:i + 256], 0).items()}
    (logits,) = session.run(["logits"], feeds)
    e = np.exp(logits - logits.max(1, keepdims=True)); probs.append(e / e.sum(1, keepdims=True))
probs = np.concatenate(probs)
python_test_acc = float((probs.argmax(1) == np.array(labels)).mean())

print("# HotFlip on a subword BERT-style model (CPU, 2 cores; `bench/bert_hotflip.sh`)\n")
print(f"Model: `tiny-bert` trained from scratch on SST-2 train by `tools/fixtures/train_tiny_bert.py` "
      f"(WordPiece vocabulary of {hp['vocab_size']} tokens built by hand, hidden {hp['hidden_size']}, "
      f"{hp['num_hidden_layers']} layers, {hp['num_attention_heads']} heads, max length "
      f"{hp['max_position_embeddings']}; {tr['epochs']} epochs in {tr['wall_seconds']:.0f} s, "
      f"kept epoch {tr['best_epoch']}), exported to ONNX (opset {hp['opset']}). hotflip-word and "
      f"unk run every pass (gradients and forward-only predictions) on Gauntlet's tch interpreter of the "
      f"graph; random, which needs no gradient, runs on ONNX Runtime.\n")
print(f"Build: release (`cargo build --release -p gauntlet-cli`, and `-p gauntlet-backends --example attack_speed`); device: CPU; load average after the audits: "
      f"{' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}. "
      f"Command: `bench/bert_hotflip.sh ../shared/data {limit}`.\n")
print(f"- dev accuracy (Python, at training): {manifest['metrics']['dev_accuracy']*100:.1f}%")
print(f"- test accuracy (Python tokenizer + ONNX Runtime, all {len(texts)}): {python_test_acc*100:.1f}%")
first = reports.get("hotflip-word")
if first:
    s = first["summary"]
    py_first = float((probs[:s["examples"]].argmax(1) == np.array(labels[:s["examples"]])).mean())
    print(f"- clean accuracy in the audit (Gauntlet, first {s['examples']} test examples): "
          f"{s['clean_accuracy']*100:.1f}% (Python on the same examples: {py_first*100:.1f}%)")
    # Tokenization agreement: Gauntlet's clean prediction per example vs Python's.
    gaps, flips = [], 0
    for ex in first["examples"]:
        before = ex.get("before")
        if before is None:
            continue
        p = probs[ex["index"]]
        flips += int(p.argmax()) != before["label"]
        gaps.append(abs(float(p[before["label"]]) - before["probability"]))
    print(f"- Gauntlet vs Python clean predictions on those examples: {flips} label disagreements, "
          f"max |Δp| = {max(gaps):.1e} (equal tokenizations give ≈1e-6)")
print()
print("| attack | attacked | skipped | success τ=0.5 | success τ=0.9 | 1 / 2 / 3+ changes | mean fwd passes | mean bwd passes | ms / example | examples/s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for attack, r in reports.items():
    s = r["summary"]
    curve = {round(c["confidence"], 2): c["success_rate"] for c in s["curve"]}
    h = s["changes_histogram"]
    ms = s["wall_time_ms"] / max(s["attacked"], 1)
    print(f"| {attack} | {s['attacked']} | {s['skipped']} | {curve.get(0.5, 0)*100:.1f}% | {curve.get(0.9, 0)*100:.1f}% "
          f"| {h['one']} / {h['two']} / {h['three_or_more']} | {s['mean_forward_passes']:.1f} | {s['mean_backward_passes']:.1f} "
          f"| {ms:.0f} | {s['examples_per_second']:.2f} |")
print(f"\n`random` makes as many changes per example as hotflip-word did (`--random-counts-from`).")
print("`unk` only uses misspellings that encode as a single [UNK]; a WordPiece vocabulary with every "
      "character and `##`+character spells any misspelling in pieces, so `unk` finds no edit (0 changes) here.")
speed = json.loads((out / "speed.json").read_text())
n = max(speed["attacked"], 1)
calls = speed["model_calls"]
ops = speed["interpreter_operators"] or []
print("\n## Where hotflip-word's time goes\n")
print(f"`attack_speed` (the `gauntlet-backends` example) ran the same attack on the same {speed['examples']:.0f} "
      f"examples ({speed['threads']} libtorch threads, batch {speed['batch_size']}): "
      f"{speed['ms_per_attacked']:.2f} ms per attacked example, of which the model calls replayed alone take "
      f"{speed['model_ms_per_attacked']:.2f} ms (engine overhead {speed['overhead']*100:+.0f}%; a negative "
      f"figure means the replay ran slower than the calls in the attack: noise). Every pass runs on the tch "
      f"interpreter: an attack that takes gradients takes its forward-only predictions from the same runtime.\n")
print("| model call | calls | texts | ms per attacked example |")
print("|---|---|---|---|")
names = {"flips": "forward + backward + word-flip scoring (`top_word_flips`)", "predict": "forward only (`predict`)",
         "gradients": "forward + backward (`loss_gradients`)", "scores": "scoring of host gradients"}
for kind, c in calls.items():
    print(f"| {names.get(kind, kind)} | {c['calls']} | {c['states']} | {c['ms']/n:.2f} |")
total = sum(o["ms"] for o in ops)
groups = {
    "matrix products (MatMul, Gemm)": {"MatMul", "Gemm"},
    "autograd backward pass": {"(autograd backward)"},
    "word-flip scoring (vocabulary product, top-k)": {"(word-flip scoring)"},
    "elementwise and normalization (Add, Mul, Div, Erf, Softmax, LayerNormalization, ...)": None,
    "shape arithmetic and indexing (Shape, Gather, Unsqueeze, Concat, Reshape, Transpose, Cast, Slice)":
        {"Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Transpose", "Cast", "Slice", "Squeeze", "Expand"},
}
named = set().union(*(g for g in groups.values() if g))
print(f"\nThe interpreter's {total/n:.2f} ms per attacked example, by operator (host wall time of each node):\n")
print("| part | ms per attacked example | share |")
print("|---|---|---|")
for label, members in groups.items():
    ms = sum(o["ms"] for o in ops if (o["op"] in members if members else o["op"] not in named))
    print(f"| {label} | {ms/n:.2f} | {ms/max(total, 1e-9)*100:.0f}% |")
print("\n| operator | calls | µs per call | ms per attacked example |")
print("|---|---|---|---|")
for o in ops[:10]:
    print(f"| {o['op']} | {o['calls']} | {o['ms']*1000/max(o['calls'], 1):.1f} | {o['ms']/n:.2f} |")
if first:
    print("\n## Example adversarial texts (hotflip-word)\n")
    shown = [ex for ex in first["examples"] if ex["outcome"] == "success"][:3]
    names = {l["id"]: l["name"] for l in manifest["labels"]}
    for ex in shown:
        b, a = ex["before"], ex["after"]
        ops = ", ".join(f"`{o.get('before')}` → `{o.get('after')}`" for o in ex["operations"])
        print(f"- {names[b['label']]} {b['probability']:.2f} → {names[a['label']]} {a['probability']:.2f} ({ops})  ")
        print(f"  original: {ex['original_text']}  ")
        print(f"  adversarial: {ex['adversarial_text']}")
PY
mv "$OUT/bert_hotflip.md" bench/results/bert_hotflip.md
cat bench/results/bert_hotflip.md
