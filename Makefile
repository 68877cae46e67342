# Keyzone: `make help` lists the targets.
GO       ?= go
BIN      := bin/keyzone
PKGS     := ./...
# The race detector needs cgo; the shipped binary does not.
TESTFLAGS ?= -race -count=1 -timeout 15m

.PHONY: help build test test-unit test-cluster chaos fuzz bench dev lint tidy depcheck clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/keyzone (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/keyzone

test: ## run every test with the race detector (unit + in-process zones)
	$(GO) test $(TESTFLAGS) $(PKGS)

test-unit: ## unit tests only (no multi-node zones)
	$(GO) test $(TESTFLAGS) ./crypto/... ./fsm/... ./keys/... ./api/... ./client/... ./cmd/...

test-cluster: ## the multi-node scenarios of test/ and cluster/
	$(GO) test $(TESTFLAGS) ./cluster/... ./test/...

chaos: ## fault scenarios, repeated (COUNT=5 by default)
	$(GO) test -race -timeout 30m -count=$(or $(COUNT),5) -run 'Fault|Kill|Restart' ./test/...

fuzz: ## fuzz the ciphertext envelope parser for 30s each
	$(GO) test -run=NONE -fuzz=FuzzParseHeader -fuzztime=30s ./crypto/
	$(GO) test -run=NONE -fuzz=FuzzOpen -fuzztime=30s ./crypto/

bench: ## Go benchmarks of crypto and the state machine
	$(GO) test -run=NONE -bench=. -benchmem ./crypto/ ./fsm/

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
