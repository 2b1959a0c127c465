# The OLM bundle, its file-based catalog and their images (docs/olm.md). The tools (the generator,
# the validators OperatorHub runs, opm) come from hack/olm/bundle/go.mod, pinned to exact versions,
# not from the operator's go.mod. Included by the Makefile:
#   include hack/olm/bundle/bundle.mk

OLM_BUNDLE_TOOLS := hack/olm/bundle
OPM_VERSION := $(shell hack/olm/bundle/version.sh)
ifeq ($(OPM_VERSION),)
$(error cannot read the operator-registry version from hack/olm/bundle/go.mod (hack/olm/bundle/version.sh failed))
endif
OPM ?= $(LOCALBIN)/opm-$(OPM_VERSION)

##@ OLM bundle and catalog

.PHONY: opm
opm: | $(LOCALBIN) ## Build opm (operator-registry, the version of hack/olm/bundle/go.mod) into bin/ (skipped when built).
	hack/olm/bundle/build-opm.sh "$(OPM)"
	ln -sf "$$(basename "$(OPM)")" "$(LOCALBIN)/opm"
