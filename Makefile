# Gauntlet developer entry points. Every target provisions the native runtimes first
# (scripts/bootstrap.sh: torch + onnxruntime from PyPI into ~/.cache/gauntlet, reused).
SHELL := /bin/bash
BOOT := set -euo pipefail; eval "$$(scripts/bootstrap.sh)"
DEMO_MODEL ?= models/sst2-word-cnn

.PHONY: run test build release bootstrap lint demo-model k8s-check

## Main job: provision, build, and start the attack server on localhost with the demo model.
## Overrides: BIND=127.0.0.1:8080, DATA_DIR=data (audit jobs and datasets).
BIND ?= 127.0.0.1:8080
DATA_DIR ?= data
## The server always runs an optimized (release) build: the attack engine's hot paths are
## several times slower at the dev profile's opt-level 1.
run: release
	@$(BOOT); exec target/release/gauntlet-server --bind $(BIND) \
	  --models-dir $(dir $(DEMO_MODEL)) --default-model $(notdir $(DEMO_MODEL)) --data-dir $(DATA_DIR)

## Tests: the Kubernetes manifests (offline schema validation), formatting, lints, then every
## test of the workspace (the server's include schemathesis against openapi.yaml, which
## scripts/schemathesis.sh installs from PyPI once, and headless Chromium on the report pages
## and the UI: scripts/browser.sh installs Debian's chromium and playwright-core from npm).
test:
	@$(BOOT); scripts/check_k8s.sh; scripts/schemathesis.sh >/dev/null; scripts/browser.sh >/dev/null; \
	  cargo fmt --all --check; \
	  cargo clippy --workspace --all-targets -- -D warnings; \
	  cargo test --workspace

## deploy/k8s validated offline against the Kubernetes OpenAPI schemas (kubernetes-validate from
## PyPI, installed once into $GAUNTLET_CACHE/tools-venv); no cluster, no cargo.
k8s-check:
	@scripts/check_k8s.sh

build:
	@$(BOOT); cargo build --workspace --bins

## Optimized binaries (what `run`, the benchmarks and `demo-model` use).
release:
	@$(BOOT); cargo build --release --workspace --bins

bootstrap:
	@scripts/bootstrap.sh >/dev/null

lint:
	@$(BOOT); cargo fmt --all --check; cargo clippy --workspace --all-targets -- -D warnings

## Rebuilds the demo bundle: word-cnn on SST-2 (GLUE phrase-level train, sentence dev),
## e.g. `make demo-model DATA=../shared/data`. The command is recorded in its manifest.
DATA ?= ../shared/data
demo-model: release
	@$(BOOT); target/release/gauntlet-train train --arch word-cnn \
	  --train $(DATA)/sst2_glue/train.tsv --dev $(DATA)/sst2/dev.tsv --out $(DEMO_MODEL) \
	  --epochs 2 --min-count 2 --max-length 60 --seed 42 --label-names negative,positive
