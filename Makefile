# spml: `make demo` and `make test` do all the set-up on a fresh machine (Debian, Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SPML := $(VENV)/bin/spml
PLUGINS := $(sort $(wildcard plugins/*))
MODELS_DIR := plugins/pose_mediapipe/src/spml_pose_mediapipe/models
STAMP := $(VENV)/.setup-stamp

.PHONY: setup demo test bench clean system-deps

setup: $(STAMP)

# Re-run the install whenever a distribution's metadata or the pins change.
$(STAMP): constraints.txt pyproject.toml $(wildcard plugins/*/pyproject.toml) $(wildcard web_app/pyproject.toml) $(wildcard web_app/package-lock.json) Makefile
	./scripts/install-system-deps.sh
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e . $(addprefix -e ,$(PLUGINS)) $(if $(wildcard web_app/pyproject.toml),-e "web_app[test]") pytest hypothesis scikit-learn
	$(PY) -m spml_pose_mediapipe.model_bundle --out $(MODELS_DIR)
	# The demo video's wheel (sports2d, from PyPI), kept in build/demo-cache for make demo and the tests.
	$(PY) -c "from spml_core.util.demo_data import DEFAULT_CACHE, fetch_wheel; fetch_wheel(DEFAULT_CACHE)"
	# StreamPoseML's example video + annotations (MIT) from the stream_pose_ml 0.3.1 sdist, for the tests and
	# benchmarks when ../shared is not beside the clone (checksummed; offline afterwards).
	$(PY) -m spml_core.util.example_data
	# StreamPoseML 0.3.1 in build/spml-ref-venv for the peer parity tests and benchmark comparisons (skipped,
	# with a message, when the package index cannot be reached).
	cd benchmarks && ../$(PY) -c "from _reference import ref_python; ref_python(required=False)"
	# The web page's MediaPipe and Socket.IO assets, pinned by web_app/package-lock.json (no CDN at run time).
	cd web_app && npm ci --no-audit --no-fund --loglevel=error
	$(PY) -m spml_web.vendor --from web_app/node_modules
	touch $(STAMP)

demo: setup
	$(PY) -m spml_core.util.demo_data data
	$(SPML) run config.yml
	@echo "== live path: replay the example's keypoints through the bundle, the decision layer and a virtual BLE peripheral"
	$(PY) -m spml_actuator_ble.demo_replay --keypoints data/keypoints/example_video.parquet --bundle data/models/steps \
		--action "Left Step=01" --action "Right Step=02" --off 00 --log data/actions.jsonl
	@echo "Demo outputs: data/keypoints (keypoints), data/dataset.parquet (+ .report.json), data/models/steps"
	@echo "  (bundle, metrics.json, confusion_matrix.png, timeline.png, reliability.png, importance.png, eval-dataset/),"
	@echo "  data/actions.jsonl (action log)."
	@echo "Live app: $(SPML) serve --config config.yml  (the serve: block: data/models/steps) then open http://127.0.0.1:5001"
	@echo "== the step model against its baseline (cross-validated: data/models/steps/metrics.json)"
	@$(PY) -m spml_core.models.trust data/models/steps/metrics.json --fail-below-baseline

test: setup
	$(VENV)/bin/pytest -q

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

system-deps:
	./scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) build data/keypoints data/dataset* data/models
