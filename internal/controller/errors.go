package controller

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// The one error vocabulary of the reconcilers: a terminalError carries a reason (a constant from
// api/v1alpha1) and a message that names the cause; it is recorded once, as Ready=False and
// Stalled=True, and never retried. Every other error is transient: the reconcile returns it and
// controller-runtime retries with backoff.

// terminalError ends a backup or restore with a reason: it is recorded once and never retried.
// Every other error is transient and retried with backoff.
type terminalError struct{ reason, message string }

func (e *terminalError) Error() string { return e.reason + ": " + e.message }

// outcome is how a terminal error is recorded: Ready=False, Stalled=True.
func (e *terminalError) outcome() outcome {
	return outcome{stalled: true, reason: e.reason, message: e.message}
}

func terminalf(reason, format string, args ...any) error {
	return &terminalError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// asTerminal returns the terminal error in err's chain, if any.
func asTerminal(err error) (*terminalError, bool) {
	return errors.AsType[*terminalError](err)
}

// givenUp is the terminal error for a transient error that lasted longer than launchRetryWindow:
// the registry's reason when the registry failed, else JobRefused.
func givenUp(err error, what string) *terminalError {
	reason := string(registry.ReasonOf(err))
	if reason == "" {
		reason = backupv1alpha1.ReasonJobRefused
	}
	return &terminalError{reason: reason, message: fmt.Sprintf("%s kept failing for %s: %v", what, launchRetryWindow, err)}
}

// refusedForGood reports an API answer that a retry of the same request cannot change: an
// admission webhook or ValidatingAdmissionPolicy denial, a ResourceQuota, an invalid object.
func refusedForGood(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsMethodNotSupported(err) ||
		apierrors.IsNotAcceptable(err) || apierrors.IsUnsupportedMediaType(err)
}
