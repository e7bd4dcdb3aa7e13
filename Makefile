# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= out/demo

.PHONY: demo test test-blenders typecheck extension preview eval bench clean

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

# the Blender tests also on the oldest Blender the manifest claims (4.2) and the newest (5.0): one venv each,
# .venv-bpy4.2 and .venv-bpy5.0, with the test dependencies but that bpy (and numpy 1.26, as those Blenders ship;
# `make test` covers 4.5 LTS)
BLENDERS := 4.2 5.0

.venv-bpy%/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-bpy$*
	.venv-bpy$*/bin/python -m pip install -q --upgrade pip
	.venv-bpy$*/bin/python -m pip install -q "torch==2.13.0"
	.venv-bpy$*/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  x = p["optional-dependencies"]; print(*[d for d in p["dependencies"] + x["test"] + x["data"] \
	  if not d.startswith(("bpy", "fake-bpy-module", "tessera"))], sep="\n")' > .venv-bpy$*/requirements.txt
	.venv-bpy$*/bin/python -m pip install -q -r .venv-bpy$*/requirements.txt "bpy==$*.*" "numpy<2"
	.venv-bpy$*/bin/python -m pip install -q --no-deps -e .
	touch $@

test-blenders: $(BLENDERS:%=.venv-bpy%/.installed)
	for v in $(BLENDERS); do .venv-bpy$$v/bin/python -m pytest -q tests/test_blender.py || exit 1; done

# the Blender add-on against fake-bpy-module's stubs (settings in pyproject.toml)
typecheck: $(STAMP)
	$(PY) -m mypy

# the extension zips, one per platform (Linux x64, Windows x64, macOS arm64 and x64) and Python (3.11: Blender
# 4.2 to 5.0; 3.13: 5.1 and newer, "-py313"), each with its wheels (ONNX Runtime, safetensors, Pillow; fetched
# from PyPI into wheels/), built and validated by Blender's own tool (shipped inside the bpy package)
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
	rm -rf $(VENV) $(BLENDERS:%=.venv-bpy%) out dist wheels .pytest_cache .mypy_cache
