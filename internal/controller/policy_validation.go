package controller

import (
	"context"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// validPolicy is a policy spec that passed every check beyond the schema, parsed once.
type validPolicy struct {
	schedule  cron.Schedule
	location  *time.Location
	selectors selectors
	deadline  time.Duration
}

// descriptors are the only @-schedules the API accepts (robfig also knows @every, @midnight and
// @annually).
var descriptors = map[string]bool{"@yearly": true, "@monthly": true, "@weekly": true, "@daily": true, "@hourly": true}

// validateSpec checks what the schema cannot (or what an older schema let through). It reads
// nothing: the registry references are checked by checkRegistryRefs.
func validateSpec(spec *backupv1alpha1.BackupPolicySpec) (validPolicy, error) {
	var v validPolicy
	var err error
	if v.schedule, err = parseSchedule(spec.Schedule); err != nil {
		return v, err
	}
	if v.location, err = loadTimeZone(spec.TimeZone); err != nil {
		return v, err
	}
	if v.selectors, err = parseSelectors(spec.NamespaceSelector, spec.WorkspaceSelector); err != nil {
		return v, err
	}
	v.deadline = defaultStartingDeadline
	if spec.StartingDeadlineSeconds != nil {
		v.deadline = time.Duration(*spec.StartingDeadlineSeconds) * time.Second
	}
	return v, nil
}

// parseSchedule parses a 5-field cron expression or one of the accepted descriptors.
func parseSchedule(spec string) (cron.Schedule, error) {
	s := strings.TrimSpace(spec)
	switch {
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule,
			"spec.schedule: %q must not carry a time zone prefix; set spec.timeZone instead", spec)
	case strings.HasPrefix(s, "@") && !descriptors[s]:
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule,
			"spec.schedule: %q is not supported; use a 5-field cron expression or @yearly, @monthly, @weekly, @daily, @hourly", spec)
	}
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule, "spec.schedule: %q is not a valid cron expression: %v", spec, err)
	}
	// "0 0 30 2 *" parses but never fires: say so rather than wait forever.
	if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule, "spec.schedule: %q never matches a date", spec)
	}
	return sched, nil
}

// loadTimeZone loads an IANA zone; empty means UTC. "Local" is refused: the operator's own zone
// would make the schedule depend on where the manager runs.
func loadTimeZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, terminalf(backupv1alpha1.ReasonInvalidTimeZone, "spec.timeZone: %q is not a known IANA time zone", name)
	}
	return loc, nil
}

// parseSelectors converts both selectors; nil and empty select everything.
func parseSelectors(namespace, workspace *metav1.LabelSelector) (selectors, error) {
	ns, err := metav1.LabelSelectorAsSelector(namespace)
	if err != nil {
		return selectors{}, terminalf(backupv1alpha1.ReasonInvalidSelector, "spec.namespaceSelector: %v", err)
	}
	ws, err := metav1.LabelSelectorAsSelector(workspace)
	if err != nil {
		return selectors{}, terminalf(backupv1alpha1.ReasonInvalidSelector, "spec.workspaceSelector: %v", err)
	}
	// LabelSelectorAsSelector maps nil to Nothing; the API says unset selects all.
	if namespace == nil {
		ns = labels.Everything()
	}
	if workspace == nil {
		ws = labels.Everything()
	}
	return selectors{Namespace: ns, Workspace: ws}, nil
}

// checkRegistryRefs checks the registry Secret and CA ConfigMap the policy names with the reader
// every backup and restore uses (readPolicyCredentials), so a policy reports the same reason as its
// backups for the same cause.
func checkRegistryRefs(ctx context.Context, reader client.Reader, namespace string, reg backupv1alpha1.RegistrySpec) error {
	_, _, err := readPolicyCredentials(ctx, reader, namespace, reg)
	return err
}
