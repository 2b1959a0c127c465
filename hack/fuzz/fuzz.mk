# Go native fuzzing (docs/reliability.md). Included by the Makefile: include hack/fuzz/fuzz.mk

##@ Fuzzing

FUZZ_TIME ?= 5s
FUZZ_LONG_TIME ?= 5m

.PHONY: test-fuzz
test-fuzz: ## Fuzz every target for FUZZ_TIME each (make test runs it; the seed corpora run in go test already).
	hack/fuzz/fuzz.sh $(FUZZ_TIME)

.PHONY: fuzz
fuzz: ## Fuzz every target for FUZZ_LONG_TIME each (5m: about 45 minutes).
	hack/fuzz/fuzz.sh $(FUZZ_LONG_TIME)
