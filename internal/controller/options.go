package controller

import (
	"k8s.io/utils/clock"
)

// Options are the manager settings every reconciler shares (DESIGN 4 "Manager settings").
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
}
