package mover

import (
	"context"
	"errors"
	"fmt"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// Error is a failure with the reason the result reports.
type Error struct {
	reason string
	err    error
}

func (e *Error) Error() string { return e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

// Reason is the Result reason for this failure.
func (e *Error) Reason() string { return e.reason }

func failf(reason, format string, args ...any) error {
	return &Error{reason: reason, err: fmt.Errorf(format, args...)}
}

// reasonOf finds the reason of err: the mover's own, else the registry's, else cancellation.
func reasonOf(err error) string {
	if me, ok := errors.AsType[*Error](err); ok {
		return me.reason
	}
	if r := registry.ReasonOf(err); r != "" {
		return string(r)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ReasonCanceled
	}
	return ReasonInternal
}

// failed turns an error into a Failed result.
func failed(err error) Result {
	return Result{Phase: PhaseFailed, Reason: reasonOf(err), Message: err.Error()}
}
