# Local single-node cluster, the image without Docker, deploying as users do, and the smoke backup
# (issue 9; docs/local-cluster.md). Included from the Makefile:
#   include hack/local-cluster/local.mk
# The cluster targets need root. Everything listens on 127.0.0.1 only.

LOCAL_CLUSTER_DIR ?= /var/tmp/dwbackup-local-cluster
REGISTRY_PORT ?= 5001
LOCAL_REGISTRY ?= 127.0.0.1:$(REGISTRY_PORT)
LOCAL_IMG ?= $(LOCAL_REGISTRY)/dwbackup/devworkspace-backup-operator:dev
export LOCAL_CLUSTER_DIR REGISTRY_PORT

##@ Local cluster

.PHONY: local-up
local-up: ## Start the local single-node Kubernetes cluster with its registry (root).
	hack/local-cluster/up.sh

.PHONY: local-down
local-down: ## Stop the local cluster and restore the host; keeps its state for a warm start.
	hack/local-cluster/down.sh

.PHONY: local-purge
local-purge: ## Stop the local cluster and delete its state directory.
	hack/local-cluster/down.sh --purge

.PHONY: image
image: ## Build the operator image without Docker and push it to the local registry.
	@curl -fsS --max-time 3 "http://$(LOCAL_REGISTRY)/v2/" >/dev/null || { \
		echo "no registry answers on $(LOCAL_REGISTRY): run make local-up first" >&2; exit 1; }
	mkdir -p "$(LOCAL_CLUSTER_DIR)"
	go run ./hack/image --push "$(LOCAL_IMG)" --plain-http --digest-file "$(LOCAL_CLUSTER_DIR)/image.digest"

.PHONY: image-tarball
image-tarball: ## Build the operator image without Docker into bin/operator-image.tar.
	go run ./hack/image --tarball bin/operator-image.tar --tag "$(LOCAL_IMG)"

.PHONY: deploy-local
deploy-local: image kustomize ## Deploy config/local (config/default for the local cluster) and wait until Available.
	KUSTOMIZE="$(KUSTOMIZE)" LOCAL_IMG="$(LOCAL_IMG)" hack/local-cluster/deploy.sh

.PHONY: undeploy-local
undeploy-local: kustomize ## Remove the operator from the local cluster.
	"$(KUSTOMIZE)" build config/local | "$(K8S_BIN)/kubectl" --kubeconfig "$(LOCAL_CLUSTER_DIR)/kubeconfig" delete --ignore-not-found -f -

.PHONY: smoke-local
smoke-local: deploy-local oras ## Back up one stopped workspace through a real Job and check the artifact with oras.
	ORAS="$(ORAS)" hack/local-cluster/smoke.sh

##@ Demo and end-to-end tests (local cluster, root)

.PHONY: test-e2e
test-e2e: kustomize oras ## Run the e2e suite (test/e2e) on the local cluster with the operator deployed; tears the cluster down after, unless KEEP_CLUSTER=1.
	KUSTOMIZE="$(KUSTOMIZE)" ORAS="$(ORAS)" hack/local-cluster/e2e.sh

.PHONY: test-load
test-load: kustomize oras ## Load on the local cluster: 200 stopped workspaces backed up at one slot, 10 at a time (docs/reliability.md).
	KUSTOMIZE="$(KUSTOMIZE)" ORAS="$(ORAS)" E2E_ARGS='-ginkgo.label-filter=load' hack/local-cluster/e2e.sh

.PHONY: demo
demo: kustomize oras ## Cluster, registry and operator up, sample workspaces and an every-minute policy; shows the first backups.
	KUSTOMIZE="$(KUSTOMIZE)" ORAS="$(ORAS)" hack/demo/demo.sh up

.PHONY: demo-down
demo-down: ## Remove the demo's objects and stop the local cluster (make local-purge also drops the registry's content).
	hack/demo/demo.sh down
