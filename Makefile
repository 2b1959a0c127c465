# DevWorkspace Backup Operator. Every tool is pinned and installed into bin/ on demand from the Go
# module proxy; nothing is downloaded from anywhere else.

IMG ?= controller:latest
YEAR ?= 2026

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec
export GOTOOLCHAIN = local

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRDs and the ClusterRole.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd paths="./api/...;./internal/controller/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt",year=$(YEAR) paths="./api/...;./internal/dwo/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files '*.go' | grep -v '^hack/k8s/')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet envtest-assets oras kustomize test-tools ## Run unit, envtest and mover tests (no cluster needed).
	ENVTEST_USE_ENV=true KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" ORAS="$(ORAS)" KUSTOMIZE="$(KUSTOMIZE)" DWBACKUP_SKIP_MISSING_TOOLS= \
		go test $$(go list ./... | grep -v /test/e2e) -coverprofile cover.out
	"$(MAKE)" --no-print-directory test-fuzz

# The real-registry tests need Debian's docker-registry: installed when missing and root, else a
# clear failure. They fail without it (internal/registry/registrytest), and `make test` clears the
# DWBACKUP_SKIP_MISSING_TOOLS opt-out, so no test is left out. The package starts a system
# registry on :5000 that the tests do not use: it is stopped right after the install.
.PHONY: test-tools
test-tools: ## Install Debian's docker-registry for the tests when missing (root).
	@command -v docker-registry >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing docker-registry"; \
		apt-get install -y -qq --no-install-recommends docker-registry >/dev/null || \
			{ apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; }; \
		(service docker-registry stop || systemctl stop docker-registry) >/dev/null 2>&1 || true; \
	else echo "make test needs docker-registry: sudo apt-get install -y docker-registry"; exit 1; fi

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (the e2e suite included).
	"$(GOLANGCI_LINT)" run --build-tags e2e

.PHONY: verify
verify: manifests generate ## Fail on stale generated code, gofmt, go vet, lint findings or a second Kubernetes version.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go test ./internal/testenv -count=1 -run 'TestKubernetesRequirement|TestK8sGoModIsConsistent|TestK8sVersionConsumers|TestNoOtherK8sVersionSource'
	"$(MAKE)" lint
	@git diff --exit-code -- api config cmd internal || { echo "generated files are stale: run make manifests generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config)" || { git status --porcelain -- api config; echo "untracked generated files: commit them"; exit 1; }

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager and mover binaries.
	go build -o bin/manager ./cmd/main.go
	go build -o bin/mover ./cmd/mover

.PHONY: run
run: manifests generate fmt vet ## Run the manager against the cluster in ~/.kube/config.
	go run ./cmd/main.go

.PHONY: docker-build
docker-build: ## Build the image with Docker (for users who have it).
	docker build -t ${IMG} .

.PHONY: build-installer
build-installer: manifests generate kustomize ## Generate dist/install.yaml with CRDs and deployment.
	mkdir -p dist
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default > dist/install.yaml

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster in ~/.kube/config.
	"$(KUSTOMIZE)" build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall the CRDs.
	"$(KUSTOMIZE)" build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator to the cluster in ~/.kube/config.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator.
	"$(KUSTOMIZE)" build config/default | kubectl delete --ignore-not-found -f -

##@ Dependencies

LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

# The Kubernetes version has one source: hack/k8s/go.mod's k8s.io/kubernetes requirement, which
# hack/k8s/version.sh prints. K8S_VERSION may be given only if it equals that version.
K8S_PINNED_VERSION := $(shell hack/k8s/version.sh)
ifeq ($(K8S_PINNED_VERSION),)
$(error cannot read the Kubernetes version from hack/k8s/go.mod (hack/k8s/version.sh failed))
endif
K8S_VERSION ?= $(K8S_PINNED_VERSION)
ifneq ($(K8S_VERSION),$(K8S_PINNED_VERSION))
$(error K8S_VERSION=$(K8S_VERSION), but hack/k8s/go.mod pins k8s.io/kubernetes v$(K8S_PINNED_VERSION) and the binaries are built from it: unset K8S_VERSION, or edit hack/k8s/go.mod to change the version)
endif
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.13.1
ORAS_VERSION ?= v1.3.6

KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
ORAS ?= $(LOCALBIN)/oras
K8S_BIN ?= $(LOCALBIN)/k8s/$(K8S_VERSION)-linux-amd64
ENVTEST_ASSETS ?= $(K8S_BIN)

.PHONY: kustomize
kustomize: | $(LOCALBIN) ## Install kustomize into bin/.
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: | $(LOCALBIN) ## Install controller-gen into bin/.
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: | $(LOCALBIN) ## Install golangci-lint into bin/.
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: oras
oras: | $(LOCALBIN) ## Install oras into bin/ (tests prove DWO compatibility with it).
	$(call go-install-tool,$(ORAS),oras.land/oras/cmd/oras,$(ORAS_VERSION))

.PHONY: envtest-assets
envtest-assets: ## Build etcd, kube-apiserver and kubectl (the version of hack/k8s/go.mod) from Go modules (skipped when built).
	hack/k8s/build.sh "$(K8S_BIN)" etcd kube-apiserver kubectl

# go-install-tool installs $2@$3 as $1-$3 and links $1 to it, so a version bump reinstalls.
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
echo "Installing $(2)@$(3)" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $(2)@$(3) ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef

include hack/bench/bench.mk
include hack/local-cluster/local.mk
include hack/prometheus/prometheus.mk
include hack/fuzz/fuzz.mk
include hack/olm/bundle/bundle.mk
include hack/olm/olm.mk
