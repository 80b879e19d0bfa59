#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests under deploy/k8s (no cluster needed).
#  1. Every resource in every *.yaml / *.yml is validated with kubernetes-validate (PyPI)
#     against the Kubernetes OpenAPI schemas that ship inside that package, in strict mode
#     (unknown fields fail), for each pinned Kubernetes version. Nothing is fetched at
#     validation time; only the first run installs the package into a venv under
#     $GAUNTLET_CACHE (default ~/.cache/gauntlet), which later runs reuse as it is.
#     A resource whose kind/apiVersion has no schema (the tool only warns) fails here too.
#  2. Project checks the schemas cannot express: the spec ConfigMap parses as TOML, resource
#     quantities are well-formed (the schemas take any string there), and the shard count N
#     agrees everywhere (each Indexed Job's completions, the "/N" of its --shard, and the
#     merge Job's list shard-0 ... shard-(N-1)).
# Exits non-zero when anything is invalid. Part of `make test`; `make k8s-check` runs it alone.
set -euo pipefail

KV_VERSION=1.37.0
# 1.33: the oldest release in which everything the Jobs use (backoffLimitPerIndex,
# maxFailedIndexes, podFailurePolicy FailIndex) is GA. 1.37: the newest schemas the package ships.
K8S_VERSIONS=(1.33.0 1.37.0)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MANIFESTS="$ROOT/deploy/k8s"
CACHE="${GAUNTLET_CACHE:-$HOME/.cache/gauntlet}"
VENV="$CACHE/tools-venv"
STAMP="$VENV/.gauntlet-kubernetes-validate-$KV_VERSION"

log() { echo "check_k8s: $*" >&2; }

if [ ! -f "$STAMP" ]; then
  PY="${PYTHON:-python3}"
  command -v "$PY" >/dev/null || { log "python3 not found; install Python 3.9+ first"; exit 2; }
  mkdir -p "$CACHE"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment at $VENV"
    "$PY" -m venv "$VENV"
  fi
  log "installing kubernetes-validate==$KV_VERSION (once; later runs are offline)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q \
      "kubernetes-validate==$KV_VERSION" >&2
  touch "$STAMP"
fi
KV="$VENV/bin/kubernetes-validate"
[ -x "$KV" ] || { log "expected $KV; remove $VENV and run again"; exit 2; }

cd "$ROOT"
FILES=()
while IFS= read -r f; do
  case "$(basename "$f")" in
    kustomization.yaml|kustomization.yml|Kustomization)
      # Not a Kubernetes API object: the OpenAPI schemas have no Kustomization kind.
      log "skipping $f: a kustomize file, not an API resource (no schema to validate it against)"
      continue ;;
  esac
  FILES+=("$f")
done < <(find deploy/k8s -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
[ "${#FILES[@]}" -gt 0 ] || { log "no manifests found under $MANIFESTS"; exit 1; }

KFLAGS=()
for v in "${K8S_VERSIONS[@]}"; do KFLAGS+=(-k "$v"); done

log "kubernetes-validate $KV_VERSION --strict against Kubernetes ${K8S_VERSIONS[*]}: ${#FILES[@]} files"
if OUTPUT="$("$KV" --strict "${KFLAGS[@]}" "${FILES[@]}" 2>&1)"; then RC=0; else RC=$?; fi
printf '%s\n' "$OUTPUT"
FAILED=0
if [ "$RC" -ne 0 ]; then
  log "kubernetes-validate exited $RC"
  FAILED=1
fi
# The tool only warns (exit 0) when it has no schema for a kind/apiVersion, e.g. a typo'd kind.
if grep -qE '^(WARN|FATAL)' <<<"$OUTPUT"; then
  log "a resource could not be checked against a schema (WARN/FATAL above)"
  FAILED=1
fi
# Every document of every file must have passed for every version, and no file may be empty.
PASSED="$(awk '/^INFO .* passed for resource /{n++} END{print n+0}' <<<"$OUTPUT")"
if DOCS="$("$VENV/bin/python" - "${FILES[@]}" <<'EOF'
import sys, yaml
n, empty = 0, False  # empty: a file without a (parsable) resource
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
    except yaml.YAMLError as e:
        print(f"check_k8s: {path} is not valid YAML: {e}", file=sys.stderr)
        empty, docs = True, []
    else:
        if not docs:
            print(f"check_k8s: {path} holds no resource", file=sys.stderr)
            empty = True
    n += len(docs)
print(n)
sys.exit(1 if empty else 0)
EOF
)"; then
  EXPECTED=$((DOCS * ${#K8S_VERSIONS[@]}))
  if [ "$PASSED" -ne "$EXPECTED" ]; then
    log "$PASSED of $EXPECTED resource validations passed ($DOCS resources x ${#K8S_VERSIONS[@]} versions)"
    FAILED=1
  fi
else
  FAILED=1
fi
[ "$FAILED" -eq 0 ] || { log "FAILED: schema validation"; exit 1; }

log "project checks (spec TOML, quantities, shard count N)"
"$VENV/bin/python" - "${FILES[@]}" <<'EOF'
import re, sys, yaml

errors = []
def err(msg):
    errors.append(msg)

resources = []
for path in sys.argv[1:]:
    with open(path) as f:
        resources += [(path, d) for d in yaml.safe_load_all(f) if d]

def command_of(job):
    containers = job["spec"]["template"]["spec"]["containers"]
    cmd = " ".join(" ".join(c.get("command", []) + c.get("args", [])) for c in containers)
    return " ".join(cmd.split())

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

for path, r in resources:
    if r["kind"] != "ConfigMap":
        continue
    for key, text in (r.get("data") or {}).items():
        if not key.endswith(".toml"):
            continue
        if tomllib is None:
            print(f"check_k8s: {path}: {key} not parsed (tomllib needs Python 3.11+)", file=sys.stderr)
            continue
        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            err(f"{path}: {key} is not valid TOML: {e}")
            continue
        for field in ("model", "data"):
            if not isinstance(spec.get(field), str):
                err(f"{path}: {key} has no `{field}` path")
        if not spec.get("attack"):
            err(f"{path}: {key} declares no [[attack]]")

# Quantities are int-or-string in the schemas, so "one" or "1 Gi" would pass them.
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
def quantities(node, where):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("requests", "limits") and isinstance(v, dict):
                for name, q in v.items():
                    yield f"{where}.{k}.{name}", q
            elif k == "sizeLimit":
                yield f"{where}.{k}", v
            else:
                yield from quantities(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from quantities(v, f"{where}.{i}")
for path, r in resources:
    for where, q in quantities(r.get("spec", {}), "spec"):
        if not QUANTITY.match(str(q)):
            err(f"{path}: {where}: {q!r} is not a Kubernetes quantity")

shard_counts = {}
merges = []
for path, r in resources:
    if r["kind"] != "Job":
        continue
    spec = r["spec"]
    cmd = command_of(r)
    if spec.get("completionMode") == "Indexed":
        n = spec.get("completions")
        m = re.search(r'--shard "?\$\{?JOB_COMPLETION_INDEX\}?/(\d+)"?', cmd)
        if not m:
            err(f"{path}: the Indexed Job's command has no --shard \"${{JOB_COMPLETION_INDEX}}/N\"")
        elif int(m.group(1)) != n:
            err(f"{path}: --shard .../{m.group(1)} but completions is {n}")
        if not isinstance(spec.get("parallelism"), int) or spec["parallelism"] > n:
            err(f"{path}: parallelism {spec.get('parallelism')} should be set and at most completions {n}")
        if 'shard-${JOB_COMPLETION_INDEX}' not in cmd:
            err(f"{path}: --out-dir must be /reports/shard-${{JOB_COMPLETION_INDEX}} (what the merge reads)")
        shard_counts[path] = n
    elif "gauntlet merge" in cmd:
        merges.append((path, [int(k) for k in re.findall(r"/reports/shard-(\d+)/audit\.json", cmd)]))

if not shard_counts:
    err("no Indexed shard Job found")
if len(set(shard_counts.values())) > 1:
    err(f"shard Jobs disagree on N: {shard_counts}")
if not merges:
    err("no merge Job (a command running `gauntlet merge`) found")
for path, listed in merges:
    for jpath, n in shard_counts.items():
        if listed != list(range(n)):
            err(f"{path}: merges shards {listed}, but {jpath} runs N={n} (shard-0 ... shard-{n - 1})")

for e in errors:
    print(f"ERROR {e}")
if errors:
    sys.exit(1)
print(f"INFO shard count N={sorted(set(shard_counts.values()))} consistent across "
      f"{len(shard_counts)} shard Job(s) and {len(merges)} merge Job(s)")
EOF
log "OK: ${#FILES[@]} manifests valid for Kubernetes ${K8S_VERSIONS[*]}"
