# The OLM bundle, its file-based catalog and their images (docs/olm.md). The tools (the generator,
# the validators OperatorHub runs, opm) come from hack/olm/bundle/go.mod, pinned to exact versions,
# not from the operator's go.mod. Included by the Makefile:
#   include hack/olm/bundle/bundle.mk

OPM_VERSION := $(shell hack/olm/bundle/version.sh)
ifeq ($(OPM_VERSION),)
$(error cannot read the operator-registry version from hack/olm/bundle/go.mod (hack/olm/bundle/version.sh failed))
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

##@ OLM bundle and catalog

.PHONY: opm
opm: | $(LOCALBIN) ## Build opm (operator-registry, the version of hack/olm/bundle/go.mod) into bin/ (skipped when built).
	hack/olm/bundle/build-opm.sh "$(OPM)"
	ln -sf "$$(basename "$(OPM)")" "$(LOCALBIN)/opm"

.PHONY: olm-gen
olm-gen: | $(LOCALBIN)
	go build -C hack/olm/bundle -o "$(OLM_GEN)" ./gen

.PHONY: bundle
bundle: manifests kustomize olm-gen ## Write the OLM bundle (bundle/, bundle.Dockerfile) from config/manifests; IMG=<ref>@sha256:... pins the image.
	"$(KUSTOMIZE)" build config/manifests | "$(OLM_GEN)" bundle --out bundle --dockerfile bundle.Dockerfile \
		--package $(OLM_PACKAGE) --channels $(OLM_CHANNEL) --version $(VERSION) --replaces $(PREVIOUS_VERSION) \
		--image "$(BUNDLE_OPERATOR_IMG)" --icon config/manifests/icon.svg

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
		--image "$(IMAGE_TAG_BASE):v$(PREVIOUS_VERSION)" --icon config/manifests/icon.svg && \
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
