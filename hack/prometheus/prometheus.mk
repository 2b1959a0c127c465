# Prometheus and promtool, built from hack/prometheus/go.mod (one pinned version) into
# bin/prometheus-<version>/ and reused: the alert rules of config/prometheus are checked and
# unit-tested by `make test`, and the e2e suite runs a real Prometheus against the manager
# (docs/metrics.md). Included by the Makefile:
#   include hack/prometheus/prometheus.mk

PROMETHEUS_VERSION := $(shell hack/module-version.sh hack/prometheus/go.mod github.com/prometheus/prometheus)
ifeq ($(PROMETHEUS_VERSION),)
$(error cannot read the Prometheus version from hack/prometheus/go.mod (hack/module-version.sh failed))
endif
PROMETHEUS_BIN ?= $(LOCALBIN)/prometheus-$(PROMETHEUS_VERSION)
PROMTOOL ?= $(PROMETHEUS_BIN)/promtool
PROMETHEUS ?= $(PROMETHEUS_BIN)/prometheus
# The rules file Prometheus reads, extracted from the PrometheusRule (regenerated every time).
ALERT_RULES ?= $(PROMETHEUS_BIN)/rules.yaml

##@ Alerts

.PHONY: promtool
promtool: ## Build promtool (the version of hack/prometheus/go.mod) into bin/ (skipped when built).
	hack/prometheus/build.sh "$(PROMETHEUS_BIN)" promtool

.PHONY: prometheus
prometheus: ## Build the Prometheus server for the e2e suite into bin/ (skipped when built).
	hack/prometheus/build.sh "$(PROMETHEUS_BIN)" prometheus

.PHONY: alert-rules
alert-rules: ## Write the rule groups of config/prometheus/alerts.yaml as a Prometheus rules file into bin/.
	mkdir -p "$(PROMETHEUS_BIN)"
	cd hack/prometheus && GOTOOLCHAIN=local go run ./rulesfile ../../config/prometheus/alerts.yaml > "$(ALERT_RULES).tmp"
	mv "$(ALERT_RULES).tmp" "$(ALERT_RULES)"

.PHONY: test-alerts
test-alerts: promtool alert-rules ## promtool check rules and promtool test rules (hack/prometheus/alerts_test.yaml) on the shipped alerts.
	"$(PROMTOOL)" check rules "$(ALERT_RULES)"
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		cp "$(ALERT_RULES)" "$$tmp/rules.yaml" && cp hack/prometheus/alerts_test.yaml "$$tmp/" && \
		"$(PROMTOOL)" test rules "$$tmp/alerts_test.yaml"

# make test runs the alert tests too; the e2e suite starts this Prometheus with these rules.
test: test-alerts
test-e2e: prometheus alert-rules
test-e2e: export PROMETHEUS := $(PROMETHEUS)
test-e2e: export ALERT_RULES := $(ALERT_RULES)
