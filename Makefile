# Harbormaster build, test and demo entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
# Control plane binaries and developer tools are rebuilt only when the pins in
# hack/tools change: the stamp's name is a hash of its go.mod and go.sum, and
# of hack/tools/kwok's (kwok needs newer k8s.io libraries: a module of its own).
TOOLS_MODS := hack/tools/go.mod hack/tools/go.sum hack/tools/kwok/go.mod hack/tools/kwok/go.sum
TOOLS_HASH := $(shell cat $(TOOLS_MODS) | sha256sum | cut -c1-16)
TOOLS_STAMP := $(BIN)/.tools-$(TOOLS_HASH)
export KUBEBUILDER_ASSETS := $(BIN)

GO_TEST_FLAGS ?=
SOAK_PODS ?= 10000
REGISTRY ?= harbormaster
TAG ?= dev
# Processes of envtest control planes left behind by a test binary killed
# mid-run (a timeout panic skips cleanups); their data dirs carry this prefix.
# The bracket keeps the pattern from matching the shell running pkill itself.
REAP := pkill -f '[k]8s_test_framework_' >/dev/null 2>&1 || true

.PHONY: help
help: ## List targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(TOOLS_STAMP) ## Build etcd, kube-apiserver, kube-controller-manager, kubectl, kwok, opa, staticcheck into bin/.

$(TOOLS_STAMP): $(TOOLS_MODS)
	@mkdir -p $(BIN)
	rm -f $(BIN)/.tools-*
	cd hack/tools && go build -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	cd hack/tools && go build -o $(BIN)/kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
	cd hack/tools && go build -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	cd hack/tools && go build -o $(BIN)/kubectl k8s.io/kubernetes/cmd/kubectl
	cd hack/tools/kwok && go build -o $(BIN)/kwok sigs.k8s.io/kwok/cmd/kwok
	cd hack/tools && go build -o $(BIN)/opa github.com/open-policy-agent/opa
	cd hack/tools && go build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck
	touch $@

.PHONY: deps
deps: ## Install Debian's prometheus if missing (the demo and the metrics tests run a real one).
	@command -v prometheus >/dev/null 2>&1 || test -x /usr/bin/prometheus || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus >/dev/null; }

.PHONY: build
build: ## Build the webhook, scheduler and harbormaster CLI binaries into bin/.
	go build -o $(BIN)/harbormaster-webhook ./cmd/webhook
	go build -o $(BIN)/harbormaster-scheduler ./cmd/scheduler
	go build -o $(BIN)/harbormaster ./cmd/harbormaster

.PHONY: test
test: tools deps ## Unit and end-to-end tests (real etcd, kube-apiserver, kube-controller-manager).
	@$(REAP)
	go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./... ; status=$$?; $(REAP); [ $$status -eq 0 ] || exit $$status
	cd hack/images && go test $(GO_TEST_FLAGS) -count=1 ./...

.PHONY: images
images: ## OCI image tarballs of the commands into bin/images/ with ko's builder (REGISTRY, TAG); no Docker needed.
	cd hack/images && go run . --repo-root=$(CURDIR) --out=$(BIN)/images --registry=$(REGISTRY) --tag=$(TAG)

.PHONY: soak
soak: tools deps ## Load and fault test: 10,000 pods, a webhook replica killed mid-load (SOAK_PODS to change); figures in docs/benchmarks.md.
	@$(REAP)
	HARBORMASTER_SOAK_PODS=$(SOAK_PODS) go test -count=1 -timeout 40m -v -run 'TestLoadWithWebhookReplicaFailure' ./test/e2e/ 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|soak_test.go'; status=$${PIPESTATUS[0]}; $(REAP); exit $$status

.PHONY: test-unit
test-unit: ## Unit tests only (no control plane).
	go test $(GO_TEST_FLAGS) -count=1 $$(go list ./... | grep -v /test/)

.PHONY: lint
lint: tools ## gofmt, go vet, staticcheck, opa fmt/check over policies/, and docs/policies.md up to date.
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(BIN)/staticcheck ./...
	@if ls policies/*.rego >/dev/null 2>&1; then \
		$(BIN)/opa fmt --fail --list policies/ && $(BIN)/opa check --strict policies/; fi
	go run ./cmd/harbormaster policy catalog --check docs/policies.md

.PHONY: catalog
catalog: ## Regenerate docs/policies.md from the METADATA of the embedded policies.
	go run ./cmd/harbormaster policy catalog -o docs/policies.md

.PHONY: bench
bench: ## Micro-benchmarks of the pure core (figures go to docs/benchmarks.md).
	go test -run '^$$' -bench . -benchmem ./pkg/...

# The demo builds the webhook and scheduler it runs itself (so its test runs
# the same path). It is built rather than `go run`: go run exits 1 on Ctrl-C
# even when the demo stopped cleanly.
.PHONY: demo
demo: tools deps ## Local demo: control plane, kwok nodes, Prometheus, webhook and scheduler processes, sample workloads and a report; Ctrl-C stops it.
	go build -o $(BIN)/harbormaster-demo ./hack/demo
	$(BIN)/harbormaster-demo

.PHONY: clean
clean: ## Remove build output (bin/ is rebuilt by `make tools`).
	rm -rf $(BIN) .demo
