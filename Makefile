# Keyzone: `make help` lists the targets.
GO       ?= go
BIN      := bin/keyzone
PKGS     := ./...
# The race detector needs cgo; the shipped binary does not.
TESTFLAGS ?= -race -count=1 -timeout 15m

.PHONY: help build test test-unit test-cluster chaos fuzz bench bench-scale dev lint tidy depcheck clean
.PHONY: image up down e2e

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/keyzone (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/keyzone

test: ## run every test with the race detector (unit + in-process zones)
	$(GO) test $(TESTFLAGS) $(PKGS)
	cd third_party/raft-boltdb && $(GO) test $(TESTFLAGS) -skip MigrateToV2 ./...

test-unit: ## unit tests only (no multi-node zones)
	$(GO) test $(TESTFLAGS) ./crypto/... ./fsm/... ./keys/... ./api/... ./client/... ./cmd/...

test-cluster: ## the multi-node scenarios of test/ and cluster/
	$(GO) test $(TESTFLAGS) ./cluster/... ./test/...

chaos: ## fault scenarios, repeated (COUNT=5 by default)
	$(GO) test -race -timeout 30m -count=$(or $(COUNT),5) -run 'Fault|Kill|Restart' ./test/...

fuzz: ## fuzz the ciphertext envelope parser for 30s each
	$(GO) test -run=NONE -fuzz=FuzzParseHeader -fuzztime=30s ./crypto/
	$(GO) test -run=NONE -fuzz=FuzzOpen -fuzztime=30s ./crypto/

bench: build ## load benchmark against the HTTP floor: 3-node zone + floor server as children; table, bin/bench.json (BENCHFLAGS=...)
	$(BIN) bench --json bin/bench.json $(BENCHFLAGS)

bench-scale: build ## 1M keys (KEYS=...) in a 3-node zone: RSS per node, snapshot size, restart time; FSM snapshot of 1M keys (minutes)
	$(GO) test -run=NONE -bench='SnapshotRestore/keys=1M' -benchtime=1x -benchmem ./fsm/
	$(BIN) bench scale --keys $(or $(KEYS),1000000) --json bin/bench-scale.json

dev: build ## run a dev cluster of two zones of three nodes on 127.0.0.1:8200-8212 (Ctrl-C stops it)
	$(BIN) dev --env-file .dev/env

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

tidy: ## fail if go.mod/go.sum are not tidy
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

depcheck: ## check that crypto and fsm import no other project package
	@for p in crypto fsm; do \
	  bad=$$($(GO) list -deps ./$$p | grep '^github.com/keyzone/keyzone/' | grep -v "^github.com/keyzone/keyzone/$$p$$"); \
	  if [ -n "$$bad" ]; then echo "$$p imports: $$bad"; exit 1; fi; done; echo "dependency direction ok"

clean: ## remove build outputs
	rm -rf bin .dev

# Docker environment (deploy/README.md): three zones of three nodes in containers.
DOCKER          ?= docker
COMPOSE         ?= docker-compose
COMPOSE_PROJECT ?= keyzone
IMAGE           ?= keyzone:dev
# First two octets of the compose networks, and the host port prefix (182: a1 on 127.0.0.1:18200).
KZ_SUBNET       ?= 10.213
KZ_PORT         ?= 182
E2E_DIR         := .e2e
KZ_COMPOSE      = KZ_IMAGE=$(IMAGE) KZ_SUBNET=$(KZ_SUBNET) KZ_PORT=$(KZ_PORT) KZ_SECRETS=./$(E2E_DIR) $(COMPOSE) -p $(COMPOSE_PROJECT)

image: build ## build bin/keyzone (static) and the FROM-scratch image (IMAGE=keyzone:dev)
	$(DOCKER) build -t $(IMAGE) .

up: image ## start three zones of three nodes in docker, wait healthy, write .e2e/env
	@mkdir -p $(E2E_DIR) && chmod 700 $(E2E_DIR)
	@[ -s $(E2E_DIR)/rek.b64 ] || (umask 077 && head -c32 /dev/urandom | base64 > $(E2E_DIR)/rek.b64 && echo "new root key in $(E2E_DIR)/rek.b64")
	@[ -s $(E2E_DIR)/token ] || (umask 077 && head -c24 /dev/urandom | base64 | tr '+/' '-_' > $(E2E_DIR)/token && echo "new operator token in $(E2E_DIR)/token")
	$(KZ_COMPOSE) up -d
	@echo "waiting for the nine nodes to be healthy..."
	@deploy/wait-healthy.sh 180 $$($(KZ_COMPOSE) ps -q)
	@umask 077 && { \
	  echo "KEYZONE_ADDR=http://127.0.0.1:$(KZ_PORT)00"; \
	  echo "KEYZONE_ADDR_ZONE_A=http://127.0.0.1:$(KZ_PORT)00"; \
	  echo "KEYZONE_ADDR_ZONE_B=http://127.0.0.1:$(KZ_PORT)10"; \
	  echo "KEYZONE_ADDR_ZONE_C=http://127.0.0.1:$(KZ_PORT)20"; \
	} > $(E2E_DIR)/env
	@umask 077 && deploy/demo-env.sh $(E2E_DIR) env $(KZ_COMPOSE) >> $(E2E_DIR)/env
	@echo "every node is healthy:"
	@echo "  zone-a  http://127.0.0.1:$(KZ_PORT)00  (a1; a2, a3 on $(KZ_PORT)01, $(KZ_PORT)02)"
	@echo "  zone-b  http://127.0.0.1:$(KZ_PORT)10  (b1; b2, b3 on $(KZ_PORT)11, $(KZ_PORT)12)"
	@echo "  zone-c  http://127.0.0.1:$(KZ_PORT)20  (c1; c2, c3 on $(KZ_PORT)21, $(KZ_PORT)22)"
	@echo "  tokens  in $(E2E_DIR)/env: KEYZONE_OPERATOR_TOKEN (the cluster operator), KEYZONE_TOKEN and KEYZONE_CRYPTO_TOKEN (organization demo)"
	@echo "set -a; . ./$(E2E_DIR)/env; set +a   # then ./bin/keyzone zone status"

down: ## stop the docker environment and remove its containers, networks and volumes
	$(KZ_COMPOSE) down -v --remove-orphans

e2e: image ## end-to-end fault suite against nine containers (its own compose project, removed after, even on failure)
	@status=0; KZ_IMAGE=$(IMAGE) KZ_COMPOSE="$(COMPOSE)" $(GO) test -tags e2e ./test/e2e/ -v -count=1 -timeout 25m \
	  -run 'TestLifecycleModel|TestNemesis' || status=$$?; \
	deploy/e2e-clean.sh kze2e; exit $$status
