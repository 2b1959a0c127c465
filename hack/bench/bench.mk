# Benchmarks of the mover (DESIGN 6). Included by the Makefile:
#   include hack/bench/bench.mk
# Uses ORAS and LOCALBIN from the Makefile; run as root to let it install pigz.

##@ Benchmarks

BENCH_SCALE ?= 1
BENCH_WORK ?= /var/tmp

.PHONY: bench-mover
bench-mover: oras bench-tools ## Benchmark the mover against DWO's method on a generated 1 GiB tree (BENCH_SCALE=0.1: 100 MiB).
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
