package controller

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// The operator's Prometheus metrics (docs/metrics.md). Counters and the duration histogram are
// counted where a backup or restore is recorded finished, once per object. Everything that
// describes the present (per-workspace state, intervals, unprotected workspaces) is computed from
// the informer cache at each scrape, so a restarted manager exports the same series as before
// without remembering anything, and a series goes away with its workspace, backups or policy.

// durationBuckets span 1 s to 4 h: an unchanged workspace to a large first upload.
var durationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// labelPolicy is the policy's name on every per-policy and per-workspace series.
const labelPolicy = "policy"

// workspaceLabels label the per-workspace series.
var workspaceLabels = []string{"namespace", "workspace", labelPolicy}

var (
	descLastSuccess = prometheus.NewDesc("dwbackup_backup_last_success_timestamp_seconds",
		"Completion time of the newest Succeeded backup of the workspace under the policy (Unix seconds).",
		workspaceLabels, nil)
	descLastStatus = prometheus.NewDesc("dwbackup_backup_last_status",
		"1 when the newest finished backup of the workspace under the policy Succeeded (or was Skipped: nothing to back up), else 0.",
		workspaceLabels, nil)
	descSize = prometheus.NewDesc("dwbackup_backup_size_bytes",
		"Compressed size of the artifact of the newest Succeeded backup of the workspace under the policy.",
		workspaceLabels, nil)
	descInterval = prometheus.NewDesc("dwbackup_policy_expected_interval_seconds",
		"The largest gap between two consecutive schedule slots of the policy within a week.",
		[]string{labelPolicy}, nil)
	descUnprotected = prometheus.NewDesc("dwbackup_workspaces_unprotected",
		"Selected workspaces that stopped after their newest successful backup and have waited longer than the expected interval (status.workspacesUnprotected).",
		[]string{labelPolicy}, nil)
)

// collectTimeout bounds one scrape's reads of the cache.
const collectTimeout = 10 * time.Second

// Metrics is every metric of the manager, registered as one prometheus.Collector.
type Metrics struct {
	backups   *prometheus.CounterVec
	durations *prometheus.HistogramVec
	restores  *prometheus.CounterVec
	state     *stateCollector
	reasons   reasonLabels
}

// maxReasonLabels bounds the reason label values: the API's and the mover's reasons are a few
// dozen, but a failed mover's reason comes from a pod's termination message, and the pods of a
// namespace are its users' to forge.
const maxReasonLabels = 64

// reasonLabels admits reason label values first come, first kept, up to maxReasonLabels; any
// later new reason is counted as "Other".
type reasonLabels struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *reasonLabels) label(reason string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[reason] {
		if len(r.seen) >= maxReasonLabels {
			return "Other"
		}
		r.seen[reason] = true
	}
	return reason
}

// NewMetrics makes the metrics of a manager whose cache reader is reader. The cache-derived series
// stay off until the Runnable of LeaderGate runs, i.e. while this replica is the leader.
func NewMetrics(reader client.Reader, intervals *intervalCache, clk clock.PassiveClock) *Metrics {
	return &Metrics{
		backups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dwbackup_backups_total",
			Help: "Backups that finished, by policy, final phase and the reason of their Ready condition.",
		}, []string{labelPolicy, "phase", "reason"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dwbackup_backup_duration_seconds",
			Help:    "Time from a backup's start (its mover Job launched) to its end, for backups that started.",
			Buckets: durationBuckets,
		}, []string{labelPolicy}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dwbackup_restores_total",
			Help: "Restores that finished, by final phase and the reason of their Ready condition.",
		}, []string{"phase", "reason"}),
		state: &stateCollector{reader: reader, intervals: intervals, clock: clk},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.backups.Describe(ch)
	m.durations.Describe(ch)
	m.restores.Describe(ch)
	for _, d := range []*prometheus.Desc{descLastSuccess, descLastStatus, descSize, descInterval, descUnprotected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.backups.Collect(ch)
	m.durations.Collect(ch)
	m.restores.Collect(ch)
	m.state.collect(ch)
}

// LeaderGate is the Runnable that exports the cache-derived series while this replica leads, so
// two replicas never both report a workspace (and never double an alert).
func (m *Metrics) LeaderGate() leaderGate {
	return leaderGate{on: &m.state.leading}
}

// backupFinished counts a backup the reconciler has just recorded in a final phase. nil-safe.
func (m *Metrics) backupFinished(b *backupv1alpha1.WorkspaceBackup) {
	if m == nil {
		return
	}
	m.backups.WithLabelValues(b.Spec.PolicyName, string(b.Status.Phase), m.reasons.label(readyReason(b.Status.Conditions))).Inc()
	if b.Status.StartTime != nil && b.Status.CompletionTime != nil {
		m.durations.WithLabelValues(b.Spec.PolicyName).Observe(b.Status.CompletionTime.Sub(b.Status.StartTime.Time).Seconds())
	}
}

// restoreFinished counts a restore the reconciler has just recorded in a final phase. nil-safe.
func (m *Metrics) restoreFinished(wr *backupv1alpha1.WorkspaceRestore) {
	if m == nil {
		return
	}
	m.restores.WithLabelValues(string(wr.Status.Phase), m.reasons.label(readyReason(wr.Status.Conditions))).Inc()
}

// leaderGate turns the cache-derived series on while the manager runs it, which it does only on
// the elected leader (NeedLeaderElection), and off again when the manager stops.
type leaderGate struct{ on *atomic.Bool }

// Start implements manager.Runnable.
func (g leaderGate) Start(ctx context.Context) error {
	g.on.Store(true)
	<-ctx.Done()
	g.on.Store(false)
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (leaderGate) NeedLeaderElection() bool { return true }

// stateCollector computes the series that describe the present from the cache at scrape time.
type stateCollector struct {
	reader    client.Reader
	intervals *intervalCache
	clock     clock.PassiveClock
	leading   atomic.Bool
}

func (c *stateCollector) collect(ch chan<- prometheus.Metric) {
	if !c.leading.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	policies := &backupv1alpha1.BackupPolicyList{}
	devWorkspaces := &dwo.DevWorkspaceList{}
	backups := &backupv1alpha1.WorkspaceBackupList{}
	for _, list := range []client.ObjectList{policies, devWorkspaces, backups} {
		if err := c.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			// A scrape without these series beats a failed scrape: the counters still go out.
			logf.Log.WithName("metrics").Error(err, "reading the cache for the metrics")
			return
		}
	}
	now := c.clock.Now()
	existing := make(map[string]bool, len(policies.Items))
	for i := range policies.Items {
		p := &policies.Items[i]
		existing[p.Name] = true
		ch <- prometheus.MustNewConstMetric(descUnprotected, prometheus.GaugeValue, float64(p.Status.WorkspacesUnprotected), p.Name)
		if valid, err := validateSpec(&p.Spec); err == nil {
			interval := c.intervals.get(p.Spec, valid, now)
			ch <- prometheus.MustNewConstMetric(descInterval, prometheus.GaugeValue, interval.Seconds(), p.Name)
		}
	}
	workspaceIDs := make(map[workspaceName]string, len(devWorkspaces.Items))
	for i := range devWorkspaces.Items {
		dw := &devWorkspaces.Items[i]
		workspaceIDs[workspaceName{Namespace: dw.Namespace, Name: dw.Name}] = dw.Status.DevWorkspaceID
	}
	for _, s := range workspaceStates(backups.Items, workspaceIDs, existing) {
		labels := []string{s.Namespace, s.Workspace, s.Policy}
		ch <- prometheus.MustNewConstMetric(descLastStatus, prometheus.GaugeValue, boolGauge(s.LastSucceeded), labels...)
		if !s.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(s.LastSuccess.Unix()), labels...)
			ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(s.SizeBytes), labels...)
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// intervalCache remembers each schedule's expected interval for an hour: computing it walks a
// week of slots (10,080 for an every-minute schedule), and the policy reconciler and every scrape
// ask for it.
type intervalCache struct {
	mu      sync.Mutex
	entries map[intervalKey]intervalEntry
}

type intervalKey struct{ schedule, timeZone string }

type intervalEntry struct {
	interval time.Duration
	until    time.Time
}

// intervalCacheTTL is how long an expected interval is reused; a daylight-saving change moves the
// week's largest gap by an hour at most, so an hour late is good enough.
const intervalCacheTTL = time.Hour

func newIntervalCache() *intervalCache {
	return &intervalCache{entries: map[intervalKey]intervalEntry{}}
}

// get returns the expected interval of a valid policy's schedule at now. A nil cache computes it.
func (c *intervalCache) get(spec backupv1alpha1.BackupPolicySpec, valid validPolicy, now time.Time) time.Duration {
	if c == nil {
		return expectedInterval(valid.schedule, valid.location, now)
	}
	key := intervalKey{schedule: spec.Schedule, timeZone: spec.TimeZone}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && now.Before(e.until) && !now.Before(e.until.Add(-intervalCacheTTL)) {
		return e.interval
	}
	for k, e := range c.entries {
		if !now.Before(e.until) {
			delete(c.entries, k) // schedules no policy asked for in an hour
		}
	}
	e := intervalEntry{interval: expectedInterval(valid.schedule, valid.location, now), until: now.Add(intervalCacheTTL)}
	c.entries[key] = e
	return e.interval
}
