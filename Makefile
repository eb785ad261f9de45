# mlprojects: `make all` trains the collection, `make test` runs the tests. `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MLP := $(BIN)/mlprojects
# The embedded MLflow store lives in the checkout unless MLFLOW_TRACKING_URI says otherwise.
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
# A local mirror of the datasets (laid out like ../shared/data) is used when it exists.
ifneq ($(wildcard ../shared/data/MANIFEST.md),)
export MLPROJECTS_DATA_DIR ?= $(abspath ../shared/data)
endif
EXTRAS ?= dev,cnn,server,spark
ARGS ?=
PROJECT ?= house_prices
PORT ?= 5001

.DEFAULT_GOAL := help
.PHONY: help venv all test test-fast lint format clean ui ui-check serve report bench load-time \
        house-prices spam sentiment stocks recommender churn mnist server server-stop server-status bench-store doctor tune \
        bench-scoring

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@# Byte-compile our own modules too: with PYTHONDONTWRITEBYTECODE set, every new process (each champion
	@# load) would otherwise recompile them from source.
	$(BIN)/python -m compileall -q common projects
	@touch $@

venv: $(VENV)/.installed ## create .venv and install the package (EXTRAS=dev,cnn,server,spark by default)

all: venv ## train every project (its default configuration and declared variants), then write and print the report
	$(MLP) train-all $(ARGS)
	$(MLP) report

report: venv ## write reports/leaderboard.md and reports/index.html from the champions
	$(MLP) report

# Tests run in one process unless ARGS asks for parallel workers (pytest-xdist, in the dev extra):
# make test ARGS="-n 2", as .ci/run does. One OpenMP thread per process keeps workers from oversubscribing
# the cores.
PYTEST := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/pytest
test: venv ## run the test suite (ARGS="-n 2": parallel workers; real data when MLPROJECTS_DATA_DIR is set)
	$(PYTEST) -q $(ARGS)

test-fast: venv ## run the tests without the slow and real-data ones
	$(PYTEST) -q -m "not slow and not realdata" $(ARGS)

lint: venv ## ruff over the code
	$(BIN)/ruff check common projects tests

format: venv ## apply ruff's automatic lint fixes (imports, upgrades); it does not reformat
	$(BIN)/ruff check --fix common projects tests

house-prices: venv ## train house_prices (Kaggle Ames regression)
	$(MLP) train house_prices --all-variants $(ARGS)

spam: venv ## train spam (SMS spam classification)
	$(MLP) train spam --all-variants $(ARGS)

sentiment: venv ## train sentiment (tweet sentiment, 3 classes)
	$(MLP) train sentiment --all-variants $(ARGS)

stocks: venv ## train stocks (next-day forecasting, walk-forward)
	$(MLP) train stocks --all-variants $(ARGS)

recommender: venv ## train recommender (content-based movies, evaluated on MovieLens users)
	$(MLP) train recommender --all-variants $(ARGS)

churn: venv ## train churn (IBM Telco churn classification)
	$(MLP) train churn --all-variants $(ARGS)

mnist: venv ## train mnist (digits: xgboost, classical, cnn)
	$(MLP) train mnist --all-variants $(ARGS)

bench: venv ## benchmark a project: make bench PROJECT=house_prices
	$(MLP) bench $(PROJECT) $(ARGS)

load-time: venv ## time a new process loading each champion and predicting one row (median of 3)
	$(MLP) load-time $(ARGS)

doctor: venv ## find runs and versions left by killed trainings (ARGS=--repair fixes them)
	$(MLP) doctor $(ARGS)

tune: venv ## tune PROJECT with Optuna, then train the best parameters (ARGS="--workers 2 --trials 50")
	$(MLP) tune $(PROJECT) $(ARGS)

ui: venv ## open the MLflow UI on the same store (http://127.0.0.1:5000); with a server URI, print its address
	@if [[ "$(MLFLOW_TRACKING_URI)" == http* ]]; then \
	  echo "The team server has its own UI: open $(MLFLOW_TRACKING_URI) in a browser."; \
	else \
	  $(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --host 127.0.0.1 --port 5000; \
	fi

ui-check: venv ## render the MLflow UI in headless Chromium, check runs show datasets and descriptions; PNGs in reports/ui
	$(BIN)/python scripts/check_ui.py --screenshots reports/ui $(ARGS)

serve: venv ## serve a project's champion over REST (400 with the project's message for bad input, 413 over 10 MiB): make serve PROJECT=spam [PORT=5001]
	$(MLP) serve $(PROJECT) --port $(PORT) $(ARGS)

server: venv ## start the team stack (MLflow server on PostgreSQL) and print the URI to export
	$(MLP) server start $(ARGS)

server-stop: venv ## stop the team stack's MLflow server and PostgreSQL (the data stays)
	$(MLP) server stop $(ARGS)

server-status: venv ## say whether the team stack runs and print its tracking URI
	$(MLP) server status $(ARGS)

bench-store: venv ## compare tracking-store throughput: embedded sqlite vs the team server
	$(MLP) bench-store $(ARGS)

bench-scoring: venv ## rows/s and peak RSS of one-shot, streaming and Spark scoring on 1M generated rows (ARGS="--rows 1000000 10000000")
	$(MLP) bench-scoring $(ARGS)

clean: ## remove caches and build files (keeps .venv, mlflow.db and data/raw)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
