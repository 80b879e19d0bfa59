#!/usr/bin/env bash
# Issue-6 check of tools/hf_to_gauntlet.py on real HuggingFace architectures, without a hub:
# installs `transformers` (PyPI) into target/hf-packages (not into the bootstrap's venv),
# builds tiny randomly initialised BERT, DistilBERT and RoBERTa classifiers locally, converts
# each to a Gauntlet bundle, and audits it with every attack. Random models predict ≈0.5 for
# everything, so success rates mean nothing here: the point is that every graph loads, ONNX
# Runtime and the interpreter agree, and every attack (white-box ones through the
# interpreter) runs. Usage: bench/hf_converter_check.sh. Writes bench/results/hf_converter.md.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-cli
OUT=target/hf-check; PKGS=target/hf-packages
rm -rf "$OUT" && mkdir -p "$OUT"
[ -d "$PKGS/transformers" ] || python -m pip install -q --target "$PKGS" transformers >&2
export PYTHONPATH="$PWD/$PKGS"
python tools/fixtures/make_hf_models.py "$OUT/hf" >/dev/null 2>&1
printf 'label\ttext\n1\tthe film was good\n0\tthe film was good\n0\ta really dull plot\n1\ta really dull plot\n1\tGreat acting and fun music\n0\tGreat acting and fun music\n' >"$OUT/data.tsv"
{
  echo "# tools/hf_to_gauntlet.py on randomly initialised HuggingFace classifiers ($(date -u +%F))"
  echo
  echo "| model | ORT vs torch (converter's check) | attack | attacked | fwd / bwd passes per example | interpreter vs ORT clean probability |"
  echo "|---|---|---|---|---|---|"
} >bench/results/hf_converter.md
for m in bert distilbert roberta; do
  check=$(python tools/hf_to_gauntlet.py "$OUT/hf/$m" "$OUT/$m" 2>/dev/null | sed -n 's/.*max |difference| = \(.*\)/\1/p')
  for a in loss-beam hotflip-word hotflip-char unk sem random-gradient random; do
    target/release/gauntlet audit --model "$OUT/$m" --data "$OUT/data.tsv" --attack "$a" --device cpu \
      --out "$OUT/$m-$a.json" >/dev/null 2>&1
    python3 - "$OUT" "$m" "$a" "$check" >>bench/results/hf_converter.md <<'PY'
import json, sys
out, m, a, check = sys.argv[1:]
r = json.load(open(f"{out}/{m}-{a}.json"))
ref = json.load(open(f"{out}/{m}-loss-beam.json"))["examples"]
diff = max(abs(x["before"]["probability"] - y["before"]["probability"]) for x, y in zip(r["examples"], ref))
s = r["summary"]
print(f"| {m} | {check} | {a} | {s['attacked']} | {s['mean_forward_passes']:.1f} / {s['mean_backward_passes']:.1f} | {diff:.1e} |")
PY
  done
done
{
  echo
  echo "The last column compares each report's clean probabilities with loss-beam's (ONNX Runtime):"
  echo "for the gradient attacks (hotflip-word, unk, sem, random-gradient) they come from the tch"
  echo "interpreter, for hotflip-char (on subword models), loss-beam and random from ONNX Runtime."
} >>bench/results/hf_converter.md
cat bench/results/hf_converter.md
