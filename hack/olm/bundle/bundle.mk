# The OLM bundle, its file-based catalog and their images (docs/olm.md). The tools (the generator,
# the validators OperatorHub runs, opm) come from hack/olm/bundle/go.mod, pinned to exact versions,
# not from the operator's go.mod. Included by the Makefile:
#   include hack/olm/bundle/bundle.mk

OPM_VERSION := $(shell hack/module-version.sh hack/olm/bundle/go.mod github.com/operator-framework/operator-registry)
ifeq ($(OPM_VERSION),)
$(error cannot read the operator-registry version from hack/olm/bundle/go.mod (hack/module-version.sh failed))
endif
OPM ?= $(LOCALBIN)/opm-$(OPM_VERSION)
OLM_GEN ?= $(LOCALBIN)/olm-bundle-gen

# The release this tree builds and the one it upgrades from. v0.1.0 is the commit PREVIOUS_COMMIT (the
# last before layered backups); its bundle is frozen in catalog/ as released (docs/olm.md).
VERSION ?= 0.2.0
PREVIOUS_VERSION ?= 0.1.0
PREVIOUS_COMMIT ?= 9effaaecdf978b565cf47ea33371458e1b611d8e
OLM_PACKAGE ?= devworkspace-backup-operator
OLM_CHANNEL ?= stable
IMAGE_TAG_BASE ?= quay.io/dwbackup/devworkspace-backup-operator
# `make bundle IMG=<ref>@sha256:...` pins the operator image of a release by digest; without IMG on
# the command line the bundle names the release tag.
BUNDLE_OPERATOR_IMG = $(if $(filter command line,$(origin IMG)),$(IMG),$(IMAGE_TAG_BASE):v$(VERSION))
BUNDLE_IMG ?= $(IMAGE_TAG_BASE)-bundle:v$(VERSION)
CATALOG_IMG ?= $(IMAGE_TAG_BASE)-catalog:latest
OLM_CATALOG_DIR := catalog/$(OLM_PACKAGE)
# The CSV's minKubeVersion: the minor of hack/k8s/go.mod's Kubernetes, the one the project tests.
OLM_MIN_KUBE_VERSION = $(word 1,$(subst ., ,$(K8S_VERSION))).$(word 2,$(subst ., ,$(K8S_VERSION))).0

# Every build of the OLM tools (opm, the generator, the validators' tests, OLM's olm and catalog in
# hack/olm/lifecycle/build.sh) uses these settings and CGO_ENABLED=0: their modules pin the same
# operator-registry, operator-framework/api and Kubernetes libraries, so with the same settings
# those packages compile once per machine instead of once per tool (docs/olm.md, build times).
OLM_TOOLS_FLAGS := -trimpath -tags=json1,containers_image_openpgp

##@ OLM bundle and catalog

.PHONY: opm
opm: | $(LOCALBIN) ## Build opm (operator-registry, the version of hack/olm/bundle/go.mod) into bin/ (skipped when built).
	hack/olm/bundle/build-opm.sh "$(OPM)"
	ln -sf "$$(basename "$(OPM)")" "$(LOCALBIN)/opm"

.PHONY: olm-gen
olm-gen: | $(LOCALBIN)
	CGO_ENABLED=0 go build -C hack/olm/bundle $(OLM_TOOLS_FLAGS) -o "$(OLM_GEN)" ./gen

.PHONY: bundle
bundle: manifests kustomize olm-gen ## Write the OLM bundle (bundle/, bundle.Dockerfile) from config/manifests; IMG=<ref>@sha256:... pins the image.
	"$(KUSTOMIZE)" build config/manifests | "$(OLM_GEN)" bundle --out bundle --dockerfile bundle.Dockerfile \
		--package $(OLM_PACKAGE) --channels $(OLM_CHANNEL) --version $(VERSION) --replaces $(PREVIOUS_VERSION) \
		--image "$(BUNDLE_OPERATOR_IMG)" --icon config/manifests/icon.svg --min-kube-version $(OLM_MIN_KUBE_VERSION)

.PHONY: catalog
catalog: bundle opm olm-gen ## Render the bundle into the file-based catalog (catalog/) beside the released ones, and validate it.
	"$(OPM)" render bundle --alpha-image-ref-template "$(BUNDLE_IMG)" -o yaml > "$(OLM_CATALOG_DIR)/bundle-v$(VERSION).yaml"
	"$(OLM_GEN)" catalog --dir "$(OLM_CATALOG_DIR)" --package $(OLM_PACKAGE) --channel $(OLM_CHANNEL) --icon config/manifests/icon.svg
	"$(OPM)" validate catalog

# Run once per release, for the release being replaced: its bundle, generated from its own commit's
# config/ with today's config/manifests, is frozen in the catalog as published.
.PHONY: catalog-previous
catalog-previous: kustomize opm olm-gen ## Render the bundle of PREVIOUS_VERSION (from PREVIOUS_COMMIT) into catalog/ (once per release).
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	git archive "$(PREVIOUS_COMMIT)" config | tar -x -C "$$tmp" && \
	rm -rf "$$tmp/config/manifests" && cp -r config/manifests "$$tmp/config/manifests" && \
	"$(KUSTOMIZE)" build "$$tmp/config/manifests" | "$(OLM_GEN)" bundle --out "$$tmp/bundle" --dockerfile "$$tmp/bundle.Dockerfile" \
		--package $(OLM_PACKAGE) --channels $(OLM_CHANNEL) --version $(PREVIOUS_VERSION) \
		--image "$(IMAGE_TAG_BASE):v$(PREVIOUS_VERSION)" --icon config/manifests/icon.svg \
		--min-kube-version $(OLM_MIN_KUBE_VERSION) && \
	mkdir -p "$(OLM_CATALOG_DIR)" && \
	"$(OPM)" render "$$tmp/bundle" --alpha-image-ref-template "$(IMAGE_TAG_BASE)-bundle:v$(PREVIOUS_VERSION)" -o yaml \
		> "$(OLM_CATALOG_DIR)/bundle-v$(PREVIOUS_VERSION).yaml"

# The local variant (docs/olm.md): what the loopback-only local cluster (hack/local-cluster) can run.
# Written on demand into DIR, never committed: DIR/bundles/v<version>/ for every bundle of the
# catalog and DIR/catalog/, their file-based catalog. Images come from the local registry; the
# OLM_LOCAL_IMAGES flags (--image FROM=TO@sha256:...) pin some by digest.
OLM_LOCAL_PREFIX ?= $(LOCAL_REGISTRY)/dwbackup/
OLM_LOCAL_IMAGES ?=
LOCAL_APISERVER_PORT ?= 16443

.PHONY: bundle-local
bundle-local: opm olm-gen ## Write the local cluster's variant of every catalog bundle and its catalog into DIR (DIR=...).
	@test -n "$(DIR)" || { echo "usage: make bundle-local DIR=<directory>" >&2; exit 2; }
	rm -rf "$(DIR)/bundles" "$(DIR)/catalog" && mkdir -p "$(DIR)/catalog/$(OLM_PACKAGE)"
	"$(OLM_GEN)" local --catalog "$(OLM_CATALOG_DIR)" --out "$(DIR)" --package $(OLM_PACKAGE) --channel $(OLM_CHANNEL) \
		--apiserver-port $(LOCAL_APISERVER_PORT) --image "$(dir $(IMAGE_TAG_BASE))=$(OLM_LOCAL_PREFIX)" $(OLM_LOCAL_IMAGES)
	# No bundle image: OLM v0 unpacks a bundle that names one with a Job running opm (an image the
	# local cluster does not have), and installs one without from its olm.bundle.object properties.
	for b in "$(DIR)"/bundles/v*; do v=$$(basename "$$b"); \
		"$(OPM)" render "$$b" -o yaml > "$(DIR)/catalog/$(OLM_PACKAGE)/bundle-$$v.yaml"; done
	cp "$(OLM_CATALOG_DIR)/package.yaml" "$(OLM_CATALOG_DIR)/channels.yaml" "$(DIR)/catalog/$(OLM_PACKAGE)/"
	"$(OPM)" validate "$(DIR)/catalog"

# The images, built without Docker by hack/image (one layer on an empty base) and pushed; plain HTTP
# only to a loopback registry. The catalog image is what `opm generate dockerfile` describes: opm as
# the entrypoint serving /configs from a cache built here, and grpc_health_probe, which OLM's
# catalog pods run as their probes.
GRPC_HEALTH_PROBE_VERSION := $(shell awk '$$1 == "github.com/grpc-ecosystem/grpc-health-probe" { print $$2 }' hack/olm/bundle/go.mod)
GRPC_HEALTH_PROBE ?= $(LOCALBIN)/grpc_health_probe-$(GRPC_HEALTH_PROBE_VERSION)
BUNDLE_DIR ?= bundle
CATALOG_SRC ?= catalog
olm-plain-http = $(if $(filter 127.0.0.1:% localhost:% [::1]:%,$(1)),--plain-http)

.PHONY: grpc-health-probe
grpc-health-probe: | $(LOCALBIN)
	@[ -x "$(GRPC_HEALTH_PROBE)" ] || CGO_ENABLED=0 go build -C hack/olm/bundle $(OLM_TOOLS_FLAGS) -o "$(GRPC_HEALTH_PROBE)" github.com/grpc-ecosystem/grpc-health-probe

.PHONY: bundle-image
bundle-image: ## Build the bundle image of BUNDLE_DIR (default bundle/) and push it to BUNDLE_IMG.
	go run ./hack/image --dir /manifests="$(BUNDLE_DIR)/manifests" --dir /metadata="$(BUNDLE_DIR)/metadata" \
		$$([ -d "$(BUNDLE_DIR)/tests/scorecard" ] && echo --dir /tests/scorecard="$(BUNDLE_DIR)/tests/scorecard") \
		$$(sed -n 's/^  \([^:]*\): \(.*\)$$/--label \1=\2/p' "$(BUNDLE_DIR)/metadata/annotations.yaml") \
		--push "$(BUNDLE_IMG)" $(call olm-plain-http,$(BUNDLE_IMG))

.PHONY: catalog-image
catalog-image: opm grpc-health-probe ## Build the catalog image of CATALOG_SRC (default catalog/) and push it to CATALOG_IMG.
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	"$(OPM)" serve "$(CATALOG_SRC)" --cache-dir="$$tmp/cache" --cache-only && \
	go run ./hack/image --file /bin/opm="$(OPM)" --file /bin/grpc_health_probe="$(GRPC_HEALTH_PROBE)" \
		--dir /configs="$(CATALOG_SRC)" --dir /tmp/cache="$$tmp/cache" --writable /tmp/cache \
		--label operators.operatorframework.io.index.configs.v1=/configs \
		--entrypoint /bin/opm --cmd serve --cmd /configs --cmd --cache-dir=/tmp/cache \
		--push "$(CATALOG_IMG)" $(call olm-plain-http,$(CATALOG_IMG))

# Everything the local cluster installs through OLM, into the local registry and DIR: the operator
# image of this tree (v$(VERSION)) and of PREVIOUS_COMMIT (v$(PREVIOUS_VERSION)), the local variant
# of both bundles pinned to those images by digest (make bundle-local), their bundle images and the
# local catalog's image. DIR/images.env lists the references.
OLM_LOCAL_OPERATOR = $(OLM_LOCAL_PREFIX)$(notdir $(IMAGE_TAG_BASE))
.PHONY: olm-local
olm-local: opm olm-gen grpc-health-probe ## Build and push the local cluster's OLM images and write its bundles and catalog into DIR (DIR=...).
	@test -n "$(DIR)" || { echo "usage: make olm-local DIR=<directory>" >&2; exit 2; }
	@curl -fsS --max-time 3 "http://$(LOCAL_REGISTRY)/v2/" >/dev/null || { \
		echo "no registry answers on $(LOCAL_REGISTRY): run make local-up first" >&2; exit 1; }
	mkdir -p "$(DIR)"
	go run ./hack/image --push "$(OLM_LOCAL_OPERATOR):v$(VERSION)" --plain-http --digest-file "$(DIR)/operator-v$(VERSION).digest"
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && git archive "$(PREVIOUS_COMMIT)" | tar -x -C "$$tmp" && \
	(cd "$$tmp" && go run ./hack/image --push "$(OLM_LOCAL_OPERATOR):v$(PREVIOUS_VERSION)" --plain-http \
		--digest-file "$(abspath $(DIR))/operator-v$(PREVIOUS_VERSION).digest")
	"$(MAKE)" --no-print-directory bundle-local DIR="$(DIR)" OLM_LOCAL_IMAGES="$$(for v in $(VERSION) $(PREVIOUS_VERSION); do \
		printf -- '--image %s=%s@%s ' "$(IMAGE_TAG_BASE):v$$v" "$(OLM_LOCAL_OPERATOR)" "$$(cat "$(DIR)/operator-v$$v.digest")"; done)"
	for b in "$(DIR)"/bundles/v*; do "$(MAKE)" --no-print-directory bundle-image BUNDLE_DIR="$$b" \
		BUNDLE_IMG="$(OLM_LOCAL_OPERATOR)-bundle:$$(basename "$$b")"; done
	"$(MAKE)" --no-print-directory catalog-image CATALOG_SRC="$(DIR)/catalog" CATALOG_IMG="$(OLM_LOCAL_OPERATOR)-catalog:local"
	{ for v in $(PREVIOUS_VERSION) $(VERSION); do \
		echo "OPERATOR_IMAGE_v$$v=$(OLM_LOCAL_OPERATOR)@$$(cat "$(DIR)/operator-v$$v.digest")"; \
		echo "BUNDLE_IMAGE_v$$v=$(OLM_LOCAL_OPERATOR)-bundle:v$$v"; done; \
		echo "CATALOG_IMAGE=$(OLM_LOCAL_OPERATOR)-catalog:local"; echo "CATALOG_DIR=$(abspath $(DIR))/catalog"; } > "$(DIR)/images.env"
	cat "$(DIR)/images.env"
	# Each pushed bundle image holds the objects the local catalog carries (opm pulls it back; the
	# catalog's bundles name no image, so compare their olm.bundle.object data).
	home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && mkdir -p "$$home/.config/containers" && \
	echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$$home/.config/containers/policy.json" && \
	for v in $(PREVIOUS_VERSION) $(VERSION); do \
		HOME="$$home" "$(OPM)" render "$(OLM_LOCAL_OPERATOR)-bundle:v$$v" --use-http -o yaml | grep '^    data: ' | \
			cmp -s - <(grep '^    data: ' "$(DIR)/catalog/$(OLM_PACKAGE)/bundle-v$$v.yaml") || \
			{ echo "the bundle image v$$v differs from $(DIR)/catalog" >&2; exit 1; }; done

# make test runs the bundle tests (the validators, opm render and validate, the local variant);
# make verify regenerates the bundle and the catalog and fails when the committed ones differ.
.PHONY: test-bundle
test-bundle: opm kustomize ## Validate the committed bundle and catalog (OperatorHub's validators, opm) and the local variant.
	cd hack/olm/bundle && CGO_ENABLED=0 go vet $(OLM_TOOLS_FLAGS) ./... && \
		OPM="$(OPM)" KUSTOMIZE="$(KUSTOMIZE)" CGO_ENABLED=0 go test -count=1 $(OLM_TOOLS_FLAGS) ./...

.PHONY: verify-bundle
verify-bundle: catalog golangci-lint
	cd hack/olm/bundle && "$(GOLANGCI_LINT)" run --build-tags containers_image_openpgp ./...
	@git diff --exit-code -- bundle bundle.Dockerfile catalog || { echo "the OLM bundle or catalog is stale: run make catalog and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- bundle bundle.Dockerfile catalog)" || { git status --porcelain -- bundle bundle.Dockerfile catalog; echo "untracked bundle or catalog files: commit them"; exit 1; }

test: test-bundle
verify: verify-bundle
