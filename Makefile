# WMS: `make demo` goes from a fresh clone to a served model; `make test` runs every test. `make help` lists the rest.
SHELL := /bin/bash
VENV := .venv
export HF_HUB_OFFLINE := 1

.PHONY: help install demo test test-fast lint ui mlflow-ui stop clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## Install the locked dependencies into .venv (skipped when up to date)
	@bash scripts/install.sh

demo: install ## Install, then materialize the whole graph on the local profile and serve the model
	@$(VENV)/bin/wms run

test: install ## Install, then run ruff, the import layering (lint-imports) and the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

test-fast: install ## The edit-test loop: ruff, the import layering and the tests not marked slow (CI runs them all)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -m "not slow"

lint: install ## ruff check, format check and the import layering
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check .

ui: install ## Open the Dagster UI with its daemon (http://127.0.0.1:3000) and, for its images and links, the MLflow UI
	$(VENV)/bin/wms data show
	@mkdir -p .wms/mlflow
	@setsid $(MAKE) --no-print-directory mlflow-ui > .wms/mlflow/ui.log 2>&1 & mlflow=$$!; \
	trap 'kill -- -$$mlflow 2>/dev/null' EXIT; \
	DAGSTER_HOME=$(CURDIR)/.wms/dagster $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: install ## Open the MLflow UI on the local state (http://127.0.0.1:5000)
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.wms/mlflow/mlflow.db -h 127.0.0.1 -p 5000

stop: ## Stop the local TorchServe
	$(VENV)/bin/wms serve stop

clean: stop ## Stop serving and delete the local state (.wms)
	rm -rf .wms
