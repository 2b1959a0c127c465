# Benchmarks of the mover and the control plane (docs/benchmarks.md). Included by the Makefile:
#   include hack/bench/bench.mk
# Uses ORAS and LOCALBIN from the Makefile; run as root to let it install pigz.

##@ Benchmarks

BENCH_SCALE ?= 1
BENCH_WORK ?= /var/tmp

.PHONY: bench-mover
bench-mover: oras bench-tools ## Benchmark the mover's backup and restore against DWO's methods on a generated 1 GiB tree (BENCH_SCALE=0.1: 100 MiB).
	go build -o "$(LOCALBIN)/mover" ./cmd/mover
	go run ./hack/bench/cmd/benchmover -scale $(BENCH_SCALE) -work "$(BENCH_WORK)" \
		-mover "$(LOCALBIN)/mover" -oras "$(ORAS)" -registry docker-registry

# pigz and docker-registry are Debian packages: installed when missing and root, else a clear failure.
.PHONY: bench-tools
bench-tools:
	@for pkg in pigz docker-registry; do \
		command -v $$pkg >/dev/null && continue; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $$pkg"; apt-get install -y -qq --no-install-recommends $$pkg >/dev/null || \
				{ apt-get update -qq && apt-get install -y -qq --no-install-recommends $$pkg >/dev/null; }; \
		else echo "bench-mover needs $$pkg: apt-get install -y $$pkg"; exit 1; fi; \
	done
	@(service docker-registry stop || systemctl stop docker-registry) >/dev/null 2>&1 || true

# The control plane against a plain client on envtest (bin/k8s: make envtest-assets). BENCH_QPS and
# BENCH_BURST are the client-side limits of both the plain client and the manager.
BENCH_QPS ?= 50
BENCH_BURST ?= 100
BENCH_DRAIN ?= 100

.PHONY: bench-controller
bench-controller: ## Benchmark the manager creating a slot's 2,000 WorkspaceBackups (10,000 DevWorkspaces) vs a plain client; writes per backup; RSS (BENCH_SCALE=0.1: a tenth).
	go build -o "$(LOCALBIN)/manager" ./cmd/main.go
	go run ./hack/bench/cmd/benchcontroller -scale $(BENCH_SCALE) -qps $(BENCH_QPS) -burst $(BENCH_BURST) \
		-drain $(BENCH_DRAIN) -manager "$(LOCALBIN)/manager"

BENCH_CHAOS_KILLS ?= 10
BENCH_CHAOS_CONCURRENCY ?= 20

.PHONY: bench-chaos
bench-chaos: ## SIGKILL the manager BENCH_CHAOS_KILLS times during a slot of 2,000 backups (10,000 DevWorkspaces); count duplicates, Jobs per backup, unfinished backups, time vs an uninterrupted slot.
	go build -o "$(LOCALBIN)/manager" ./cmd/main.go
	go run ./hack/bench/cmd/benchcontroller -chaos $(BENCH_CHAOS_KILLS) -chaos-concurrency $(BENCH_CHAOS_CONCURRENCY) \
		-scale $(BENCH_SCALE) -qps $(BENCH_QPS) -burst $(BENCH_BURST) -manager "$(LOCALBIN)/manager"
