# One entry point for people and CI. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SHORT  ?=

.PHONY: demo test check lint typecheck pytest bench bench-short calibrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	# The benchmark peer, beside dlib-bin: --no-deps, or pip would compile dlib from source.
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/faceaccord demo

test: lint typecheck pytest

check: test

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py $(SHORT)
	$(BIN)/python benchmarks/bench_embedding.py $(SHORT)
	$(BIN)/python benchmarks/bench_policy.py $(SHORT)
	$(BIN)/python benchmarks/bench_gallery.py $(SHORT)
	$(BIN)/python benchmarks/bench_search.py $(SHORT)
	$(BIN)/python benchmarks/bench_service.py $(SHORT)
	$(BIN)/python benchmarks/bench_mitigation.py $(SHORT)

bench-short:
	$(MAKE) bench SHORT=--short

calibrate: $(STAMP)
	$(BIN)/python benchmarks/calibrate_operating_point.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
