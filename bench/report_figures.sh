#!/usr/bin/env bash
# Issue 14: the HTML report in headless Chromium. Trains two word-CNNs on SST-2 (2 epochs,
# seed 42: plain, and UNK-trained), audits both with `unk` on every SST-2 test sentence,
# writes the audit page of the baseline and the comparison page of the two, then a
# 20,000-row report (the baseline's examples repeated, renumbered; its summary as is) to
# time how fast a large report opens. Chromium (Debian's) is driven by playwright-core
# through crates/gauntlet-server/tests/browser/check.mjs, which also checks the rows, the
# curve's points and that nothing is fetched. Screenshots: bench/results/report-audit.png
# and bench/results/report-comparison.png.
# Usage: bench/report_figures.sh DATA_DIR. Writes bench/results/report_figures.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/report_figures.sh DATA_DIR}")
RESULTS=bench/results/report_figures.md
rm -f "$RESULTS" bench/results/report-audit.png bench/results/report-comparison.png
eval "$(scripts/bootstrap.sh 2>/dev/null)"
mapfile -t BROWSER < <(scripts/browser.sh)
cargo build --release -q -p gauntlet-train -p gauntlet-cli
TARGET="${CARGO_TARGET_DIR:-target}/release"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOAD_BEFORE=$(uptime)
for adv in none unk; do
  "$TARGET/gauntlet-train" train --arch word-cnn --train "$DATA/sst2/train.tsv" --dev "$DATA/sst2/dev.tsv" \
    --out "$WORK/word-cnn-$adv" --epochs 2 --seed 42 --max-length 60 --device cpu --adv "$adv" \
    >"$WORK/train-$adv.log" 2>&1
  cat >"$WORK/audit-$adv.toml" <<TOML
model = "word-cnn-$adv"
data = "$DATA/sst2/test.tsv"
seed = 0
device = "cpu"
[[attack]]
kind = "unk"
TOML
  "$TARGET/gauntlet" run --spec "$WORK/audit-$adv.toml" --out-dir "$WORK/reports-$adv" --threads 2 \
    --format json --format html 2>"$WORK/audit-$adv.log"
done
cp "$WORK/reports-none/audit.json" "$WORK/baseline.json"
cp "$WORK/reports-unk/audit.json" "$WORK/unk-trained.json"
"$TARGET/gauntlet" compare "$WORK/baseline.json" "$WORK/unk-trained.json" --out "$WORK/comparison.html" 2>/dev/null
"$TARGET/gauntlet" compare "$WORK/baseline.json" "$WORK/unk-trained.json" --format json --out "$WORK/comparison.json" 2>/dev/null
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
r = json.load(open(f"{work}/baseline.json"))
ex = r["attacks"][0]["report"]["examples"]
big = [dict(ex[i % len(ex)], index=i) for i in range(20000)]
r["attacks"][0]["report"]["examples"] = big
json.dump(r, open(f"{work}/big.json", "w"))
PY
"$TARGET/gauntlet" report "$WORK/big.json" --out "$WORK/big.html" 2>/dev/null
python3 - "$WORK" "${BROWSER[0]}" "$PWD/bench/results" >"$WORK/cases.json" <<'PY'
import json, sys
work, chromium, results = sys.argv[1:4]
def expect(report, series_suffix=None):
    a = report["attacks"]
    points = [{"series": x["name"], "confidence": p["confidence"], "rate": p["success_rate"]}
              for x in a for p in x["report"]["summary"]["curve"]]
    return {"rows": min(50, len(a[0]["report"]["examples"])), "points": points, "texts": []}
base = json.load(open(f"{work}/baseline.json"))
big = json.load(open(f"{work}/big.json"))
comp = json.load(open(f"{work}/comparison.json"))
cpoints = [{"series": f"{x['name']} ({s})", "confidence": p["confidence"], "rate": p["success_rate"]}
           for x in comp["attacks"] for s in ("A", "B") for p in x[s.lower()]["curve"]]
print(json.dumps({"executable": chromium, "cases": [
    {"name": "audit", "mode": "report", "url": f"file://{work}/reports-none/audit.html", "expect": expect(base),
     "screenshot": f"{results}/report-audit.png"},
    {"name": "comparison", "mode": "report", "url": f"file://{work}/comparison.html",
     "expect": {"rows": 0, "points": cpoints, "texts": []}, "screenshot": f"{results}/report-comparison.png"},
    {"name": "20000 rows", "mode": "report", "url": f"file://{work}/big.html", "expect": expect(big)},
    {"name": "20000 rows (again)", "mode": "report", "url": f"file://{work}/big.html", "expect": expect(big)},
]}))
PY
node crates/gauntlet-server/tests/browser/check.mjs "${BROWSER[1]}" "$WORK/cases.json" >"$WORK/browser.jsonl"
LOAD_AFTER=$(uptime)
python3 - "$WORK" "$LOAD_BEFORE" "$LOAD_AFTER" >"$RESULTS" <<'PY'
import json, os, sys
work, load_before, load_after = sys.argv[1:4]
runs = {j["name"]: j for j in map(json.loads, open(f"{work}/browser.jsonl"))}
if not all(j["ok"] for j in runs.values()):
    sys.exit(f"browser checks failed: {runs}")
comp = json.load(open(f"{work}/comparison.json"))
print("# The HTML report in headless Chromium (`bench/report_figures.sh`)\n")
print("Issue 14. Two word-CNNs trained on SST-2 (`gauntlet-train train --arch word-cnn --epochs 2 --seed 42")
print("--max-length 60 --adv none|unk`), each audited with `unk` on every SST-2 test sentence")
print("(`gauntlet run --format json --format html`), compared with `gauntlet compare`; a 20,000-row report")
print("(the baseline's examples repeated and renumbered, its summary as is) rendered with `gauntlet report`.\n")
print("- Build: `cargo build --release` (profile `release`); device: CPU, the 2 cores of this machine;")
print("  browser: Debian's Chromium, headless, driven by playwright-core (`crates/gauntlet-server/tests/browser/check.mjs`).")
print(f"- Load before: `{load_before.strip()}`; after: `{load_after.strip()}`.\n")
print("| model | clean accuracy | UNK success rate | accuracy under UNK |")
print("|---|---:|---:|---:|")
a = comp["attacks"][0]
for side in ("a", "b"):
    m = a[side]
    print(f"| {comp[side]['label']} | {m['clean_accuracy']:.4f} | {m['success_rate']:.4f} | {m['accuracy_under_attack']:.4f} |")
print(f"\nExamples fooled on the baseline and resisted by the UNK-trained model: {len(a['only_a_fooled'])}; the reverse: {len(a['only_b_fooled'])}.")
print("These 2-epoch models exist to give the comparison page real content; they are not robustness")
print("figures (converged models and their figures: `bench/results/table7.md`).\n")
print("| page | file size | time to open (goto → rendered) |")
print("|---|---:|---:|")
for name, path in [("audit", "reports-none/audit.html"), ("comparison", "comparison.html"), ("20000 rows", "big.html"), ("20000 rows (again)", "big.html")]:
    size = os.path.getsize(f"{work}/{path}")
    print(f"| {name} | {size / 1e6:.2f} MB | {runs[name]['load_ms']} ms |")
print("\nEach page passed the browser checks: rows of the first page, every curve point against the JSON,")
print("no network request. Screenshots: [`report-audit.png`](report-audit.png), [`report-comparison.png`](report-comparison.png).")
PY
cat "$RESULTS"
