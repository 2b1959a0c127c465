package controller

import (
	"time"

	"k8s.io/utils/clock"
)

// Options are the manager settings every reconciler shares (docs/architecture.md, "Manager settings").
type Options struct {
	// OperatorNamespace holds the policies' registry Secrets and CA ConfigMaps (POD_NAMESPACE).
	OperatorNamespace string
	// DWONamespace is where DWO's devworkspace-operator-config lives; empty means search for it.
	DWONamespace string
	// MoverImage is the image with /mover that backup and restore Jobs run.
	MoverImage string
	// MoverHostNetwork runs mover pods on the host network (the loopback-only test cluster only).
	MoverHostNetwork bool
	// Clock is injected so tests drive schedules without sleeping.
	Clock clock.Clock
	// ArtifactRetryInterval is the wait between attempts to delete a pruned backup's artifact
	// (default 30s); after maxArtifactDeleteAttempts the artifact is left and the backup released.
	ArtifactRetryInterval time.Duration
}

// artifactRetryInterval returns the configured interval or its default.
func (o Options) artifactRetryInterval() time.Duration {
	if o.ArtifactRetryInterval > 0 {
		return o.ArtifactRetryInterval
	}
	return 30 * time.Second
}
