# Each target sets itself up: a .venv with the exact versions of requirements.lock.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench bench-quick

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	# aeon's wheel carries UCR/UEA datasets (GunPoint, ItalyPowerDemand, ...); augtrain reads the
	# files without importing aeon, so its heavy dependencies (numba) are not needed here
	$(PY) -m pip install -q --no-deps aeon==1.6.0
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/augtrain run jobs/digits_cnn.yaml

test: $(VENV)/.installed
	$(PY) -m pytest

# exit status 1 when any benchmark row is FAIL or a script crashes (benchmarks/run_all.py says which)
bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[vectors]'  # gensim: benchmarks/wordnet_vectors.py, word vectors for jobs/trec_cnn.yaml
	cd benchmarks && ../$(PY) run_all.py

bench-quick: $(VENV)/.installed
	cd benchmarks && ../$(PY) run_all.py --quick
