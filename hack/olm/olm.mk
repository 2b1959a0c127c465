# OLM v0 (its olm and catalog operators, built from hack/olm/lifecycle/go.mod into
# bin/olm-<version>/ and reused) and `make test-olm`: the operator installed, upgraded and
# uninstalled through it on the local cluster (docs/olm-lifecycle.md). Included by the Makefile:
#   include hack/olm/olm.mk

OLM_VERSION := $(shell hack/module-version.sh hack/olm/lifecycle/go.mod github.com/operator-framework/operator-lifecycle-manager)
ifeq ($(OLM_VERSION),)
$(error cannot read the OLM version from hack/olm/lifecycle/go.mod (hack/module-version.sh failed))
endif
OLM_BIN ?= $(LOCALBIN)/olm-$(OLM_VERSION)

##@ OLM lifecycle (local cluster, root)

.PHONY: olm
olm: ## Build OLM v0's olm and catalog operators (the version of hack/olm/lifecycle/go.mod) into bin/ (skipped when built).
	hack/olm/lifecycle/build.sh "$(OLM_BIN)"

.PHONY: test-olm
test-olm: olm opm oras kustomize ## Install, back up, upgrade and uninstall the operator through OLM on the local cluster; tears the cluster down after, unless KEEP_CLUSTER=1.
	OLM_BIN="$(OLM_BIN)" OPM="$(OPM)" ORAS="$(ORAS)" KUSTOMIZE="$(KUSTOMIZE)" hack/olm/test-olm.sh

.PHONY: release-finalizers
release-finalizers: ## After uninstalling the operator: release its finalizer from every WorkspaceBackup (artifacts stay), so namespaces can be deleted.
	hack/olm/release-finalizers.sh

# The OLM suite (test/e2e/olm_test.go) builds with the tag olm, which make lint's e2e run leaves
# out: lint it too. `unused` stays with the e2e run: the OLM suite uses only some shared helpers.
.PHONY: lint-olm
lint-olm: golangci-lint
	"$(GOLANGCI_LINT)" run --build-tags olm --disable unused ./test/e2e/...
lint: lint-olm
