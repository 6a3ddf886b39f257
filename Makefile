# HEAN: the two set-up commands are `make run` (main job) and `make test` (install, infra, tests).
VENV ?= .venv
PY := $(VENV)/bin/python
HEAN := $(VENV)/bin/hean
DURATION ?= 0
UP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install infra-up infra-down run test bench lint schemas up down

install:
	@bash infra/install.sh

infra-up: install
	@$(HEAN) infra up

infra-down:
	@$(HEAN) infra down

## the main job: the local stack plus every service, live in the terminal (DURATION=60: run 60 s, print a summary)
run: infra-up
	@$(HEAN) up --duration $(DURATION) $(UP_ARGS)

## install what is missing, start the local stack, run every test
test: infra-up
	@$(PY) -m pytest $(PYTEST_ARGS)

## benchmarks → bench/results/latest.json and a printed table (ONLY="tick_to_order ..." for some groups)
bench: infra-up
	@bash bench/nautilus/install.sh
	@$(PY) bench/run.py $(ONLY)

lint: install
	@$(VENV)/bin/ruff check .

schemas: install
	@$(HEAN) schemas export --out docs/EVENTS.md

## the full stack with Docker (Redpanda, ClickHouse, Redis …)
up:
	docker compose up -d --build

down:
	docker compose down
