# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= out/demo

.PHONY: demo test typecheck extension preview eval bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned: this version has a CPU build the installer finds without CUDA packages
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(STAMP)
	$(PY) -m core.demo --out $(OUT)

test: $(STAMP) typecheck
	$(PY) -m pytest -q

# the Blender add-on against fake-bpy-module's stubs (settings in pyproject.toml)
typecheck: $(STAMP)
	$(PY) -m mypy

# the extension zips, one per platform (Linux x64, Windows x64, macOS arm64 and x64), each with its wheels
# (ONNX Runtime, safetensors, Pillow; fetched from PyPI into wheels/), built and validated by Blender's own
# tool (shipped inside the bpy package)
extension: $(STAMP)
	$(PY) tools/extension.py --out dist

# a Cycles render (CPU) of generated materials, through the installed extension, in real Blender
preview: $(STAMP)
	$(PY) tools/preview.py --out docs/preview.png

eval: $(STAMP)
	$(PY) -m core.eval

# speed on this machine → docs/BENCHMARKS.md (+ plots, raw JSON)
bench: $(STAMP)
	$(PY) -m core.bench

clean:
	rm -rf $(VENV) out dist wheels .pytest_cache .mypy_cache
