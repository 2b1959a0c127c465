// Command rulesfile writes the rule groups of a PrometheusRule manifest as a Prometheus rules file
// (what promtool and a plain Prometheus read): `rulesfile alerts.yaml > rules.yaml`. The output
// is deterministic (keys sorted), so the rules tested are exactly the rules shipped.
package main

import (
	"errors"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Groups []any `json:"groups"`
	} `json:"spec"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rulesfile:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: rulesfile PROMETHEUSRULE.yaml > rules.yaml")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var rule prometheusRule
	if err := yaml.Unmarshal(data, &rule); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if rule.Kind != "PrometheusRule" || rule.APIVersion != "monitoring.coreos.com/v1" {
		return fmt.Errorf("%s: kind %q, apiVersion %q: want a monitoring.coreos.com/v1 PrometheusRule", args[0], rule.Kind, rule.APIVersion)
	}
	if len(rule.Spec.Groups) == 0 {
		return fmt.Errorf("%s: spec.groups is empty", args[0])
	}
	out, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
