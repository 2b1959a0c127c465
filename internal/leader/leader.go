/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package leader is the manager's leader election: its flags, and the Lease lock held under the
// pod's name. The replicas of the manager compete for one Lease; only its holder runs the
// reconcilers and exports the cache-derived metrics (docs/reliability.md, "Two replicas").
package leader

import (
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// ElectionID names the Lease the replicas compete for.
const ElectionID = "devworkspace-backup-operator.dwbackup.io"

// Flags are the leader-election settings. The defaults are controller-runtime's: a killed leader
// (no chance to release the Lease) is replaced about LeaseDuration after its last renewal.
type Flags struct {
	Enabled                                   bool
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Bind registers --leader-elect and --leader-elect-{lease-duration,renew-deadline,retry-period}.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.BoolVar(&f.Enabled, "leader-elect", false,
		"Enable leader election, so that only one manager is active.")
	fs.DurationVar(&f.LeaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"How long the other replicas wait after the leader's last renewal before taking over.")
	fs.DurationVar(&f.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"How long the leader keeps retrying a failed renewal before it gives up leading (and exits).")
	fs.DurationVar(&f.RetryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How often the leader renews and the other replicas try to acquire.")
}

// Validate refuses what client-go's leader elector would refuse only once the manager starts,
// naming the flags.
func (f Flags) Validate() error {
	switch {
	case f.RetryPeriod <= 0:
		return fmt.Errorf("--leader-elect-retry-period must be positive, got %s", f.RetryPeriod)
	case f.RenewDeadline <= time.Duration(1.2*float64(f.RetryPeriod)):
		// client-go retries with a jitter of up to 1.2 periods.
		return fmt.Errorf("--leader-elect-renew-deadline (%s) must be more than 1.2 times --leader-elect-retry-period (%s)",
			f.RenewDeadline, f.RetryPeriod)
	case f.LeaseDuration <= f.RenewDeadline:
		return fmt.Errorf("--leader-elect-lease-duration (%s) must be more than --leader-elect-renew-deadline (%s)",
			f.LeaseDuration, f.RenewDeadline)
	}
	return nil
}

// identity is the Lease's holderIdentity: the pod's name when known, else the host name,
// plus a random suffix so a restarted process is a new candidate. controller-runtime's own
// identity starts with the host name, which on the host network is the node's for every replica.
func identity(podName, hostname, suffix string) string {
	if podName == "" {
		podName = hostname
	}
	return podName + "_" + suffix
}

// Apply sets the manager's leader election: off unless --leader-elect, else the Lease lock in
// namespace under identity (of the pod named by the POD_NAME environment variable), the flags'
// timings, and the Lease released when the manager stops.
func (f Flags) Apply(opts *ctrl.Options, cfg *rest.Config, namespace string) error {
	opts.LeaderElection = f.Enabled
	if !f.Enabled {
		return nil
	}
	lock, err := f.lock(cfg, opts.Scheme, namespace)
	if err != nil {
		return err
	}
	opts.LeaderElectionResourceLockInterface = lock
	opts.LeaderElectionID = ElectionID
	opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = &f.LeaseDuration, &f.RenewDeadline, &f.RetryPeriod
	// A leader stopped by SIGTERM (a rollout, a drain) hands the Lease over at once instead of
	// making the next leader wait out the lease duration. The manager's process must exit as soon
	// as the manager stops, as controller-runtime requires for this (cmd/main.go does).
	opts.LeaderElectionReleaseOnCancel = true
	// A replica that does not lead still starts its controllers' watches and syncs their caches, so
	// that it reconciles as soon as it is elected: syncing them only then (10,000 DevWorkspaces,
	// thousands of WorkspaceBackups) can take a minute on a busy node (docs/reliability.md).
	opts.Controller.EnableWarmup = ptr.To(true)
	return nil
}

// lock is the Lease lock under identity, recording "became leader" events as controller-runtime's
// own lock does.
func (f Flags) lock(cfg *rest.Config, scheme *runtime.Scheme, namespace string) (resourcelock.Interface, error) {
	hostname, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	id := identity(os.Getenv("POD_NAME"), hostname, string(uuid.NewUUID()))
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// One hung request must not outlast the renew deadline (controller-runtime's heuristic).
	cfg.Timeout = max(f.RenewDeadline/2, time.Second)
	clients, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clients.CoreV1().Events(namespace)})
	return resourcelock.New(resourcelock.LeasesResourceLock, namespace, ElectionID,
		clients.CoreV1(), clients.CoordinationV1(), resourcelock.ResourceLockConfig{
			Identity:      id,
			EventRecorder: events.NewRecorder(scheme, corev1.EventSource{Component: id}),
		})
}
