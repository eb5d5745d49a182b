# pgops.deploy — every target does its own set-up on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV       ?= .venv
PY         := $(VENV)/bin/python
BIN        := $(VENV)/bin
COLL_LINK  := .collections/ansible_collections/pgops/deploy
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PY_COLORS := 1
export ANSIBLE_FORCE_COLOR := 1
# Molecule scenarios to run in `make test` (all by default).
SCENARIOS  ?= $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard molecule/*/molecule.yml)))))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- set-up
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(COLL_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

.PHONY: venv
venv: $(VENV)/.installed $(COLL_LINK) ## create the project venv and link the collection

.PHONY: host-deps
host-deps: ## install host packages (PostgreSQL 15 + PostGIS for the test fixture, zstd, git)
	scripts/testbed/host-deps.sh

.PHONY: testbed
testbed: venv ## make a Docker engine available and build the cached test images
	scripts/testbed/ensure-docker.sh
	scripts/testbed/build-images.sh

# ---------------------------------------------------------------- checks
.PHONY: lint
lint: venv ## yamllint + changelog fragments + ansible-lint (production profile) + syntax check of every playbook
	$(BIN)/yamllint -s .
	$(BIN)/antsibull-changelog lint
	$(BIN)/ansible-lint --profile production --offline
	for pb in deploy.yml playbooks/*.yml; do \
	  $(BIN)/ansible-playbook --syntax-check -i inventories/hosts.yml "$$pb" >/dev/null || { echo "syntax check failed: $$pb"; exit 1; }; \
	  echo "syntax ok: $$pb"; done

.PHONY: unit
unit: venv ## unit tests (pure logic)
	$(BIN)/pytest -q tests/unit

.PHONY: integration
integration: venv host-deps ## integration tests against a throwaway PostgreSQL 15 + PostGIS cluster
	$(BIN)/pytest -q tests/integration

.PHONY: molecule
molecule: testbed ## every Molecule scenario (SCENARIOS="a b" to choose)
	for s in $(SCENARIOS); do echo "=== molecule scenario $$s"; $(BIN)/molecule test -s $$s || exit 1; done

.PHONY: test
test: lint unit integration molecule ## everything CI runs
	@echo "make test: all green"

# ---------------------------------------------------------------- demo
.PHONY: demo
demo: host-deps testbed ## deploy the sample app to local containers and print the report
	scripts/demo.sh

.PHONY: demo-clean
demo-clean: ## remove the demo containers and network
	scripts/demo.sh --clean

.PHONY: build
build: venv ## build the collection tarball
	$(BIN)/ansible-galaxy collection build --force --output-path build/

.PHONY: ee
ee: build ## render the AWX/AAP execution-environment build context (build/ee)
	$(BIN)/ansible-builder create -f execution-environment.yml --context build/ee --output-filename Containerfile

.PHONY: clean
clean: demo-clean ## remove venv, build output and caches
	rm -rf $(VENV) .collections build .pytest_cache
