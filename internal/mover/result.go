// Package mover backs up a workspace directory into an OCI registry and restores it.
// It is the library behind cmd/mover; the controller imports it only for Result,
// Phase and the reason constants, so it starts nothing and registers nothing on import.
package mover

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"unicode/utf8"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// Phase is the outcome of a mover run.
type Phase string

// Phases.
const (
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseSkipped   Phase = "Skipped"
)

// Reasons in Result.Reason: stable CamelCase words (docs/mover-contract.md). Registry failures
// keep the registry package's reason.
const (
	ReasonCompleted          = "Completed"
	ReasonUnchanged          = "Unchanged"
	ReasonNoWorkspaceStorage = "NoWorkspaceStorage"
	ReasonUnreadableFile     = "UnreadableFile"
	ReasonTargetNotEmpty     = "TargetNotEmpty"
	ReasonUnsafeEntry        = "UnsafeEntry"
	ReasonInvalidArchive     = "InvalidArchive"
	ReasonInvalidArtifact    = "InvalidArtifact"
	ReasonInvalidArguments   = "InvalidArguments"
	ReasonWriteFailed        = "WriteFailed"
	// ReasonTagExists: the unique tag already names another manifest; it is never moved.
	ReasonTagExists             = "TagExists"
	ReasonUnsafeSource          = "UnsafeSource"
	ReasonUnsafeTarget          = "UnsafeTarget"
	ReasonInternal              = "InternalError"
	ReasonDigestMismatch        = string(registry.ReasonDigestMismatch)
	ReasonUnauthorized          = string(registry.ReasonUnauthorized)
	ReasonRegistryUnreachable   = string(registry.ReasonRegistryUnreachable)
	ReasonArtifactNotFound      = string(registry.ReasonNotFound)
	ReasonPlainHTTPRefused      = string(registry.ReasonPlainHTTPRefused)
	ReasonTLSVerificationFailed = string(registry.ReasonTLSVerificationFailed)
	ReasonInvalidReference      = string(registry.ReasonInvalidReference)
	ReasonInvalidCredentials    = string(registry.ReasonInvalidCredentials)
	ReasonCanceled              = string(registry.ReasonCanceled)
	ReasonRegistryError         = string(registry.ReasonRegistryError)
)

// MaxResultSize is the size of a Kubernetes termination message; an encoded Result always fits.
const MaxResultSize = 4096

// Result is the one JSON object a mover run writes (docs/mover-contract.md).
type Result struct {
	Phase     Phase  `json:"phase"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	// SizeBytes is the compressed artifact (layer) size.
	SizeBytes int64 `json:"sizeBytes"`
	// Bytes is the file content in the backup or restored.
	Bytes           int64   `json:"bytes"`
	Files           int64   `json:"files"`
	Unchanged       bool    `json:"unchanged"`
	DurationSeconds float64 `json:"durationSeconds"`
}

// Exit codes of `mover`: the Job's pod failure policy fails the Job at once on a permanent
// failure instead of running the same refusal again backoffLimit times.
const (
	ExitOK        = 0
	ExitRetryable = 1 // a failure another attempt may not have (the registry was unreachable)
	ExitUsage     = 2
	ExitPermanent = 3 // the same input fails again (TargetNotEmpty, Unauthorized, UnsafeEntry, ...)
)

// retryableReasons are the failures worth another attempt; every other failure is permanent.
var retryableReasons = map[string]bool{
	ReasonRegistryUnreachable: true, ReasonRegistryError: true, ReasonInternal: true, ReasonCanceled: true,
}

// ExitCode is the exit status for a result.
func (r Result) ExitCode() int {
	switch {
	case r.OK():
		return ExitOK
	case retryableReasons[r.Reason]:
		return ExitRetryable
	default:
		return ExitPermanent
	}
}

// OK reports whether the run should exit 0.
func (r Result) OK() bool { return r.Phase == PhaseSucceeded || r.Phase == PhaseSkipped }

// Encode returns the JSON of r, shortening Message until it fits MaxResultSize.
func (r Result) Encode() []byte {
	for {
		data, err := json.Marshal(r)
		if err != nil { // cannot happen for these field types
			return []byte(`{"phase":"Failed","reason":"InternalError"}`)
		}
		if len(data) < MaxResultSize || r.Message == "" {
			return data
		}
		keep := len(r.Message) - (len(data) - MaxResultSize) - 64
		if keep < 16 {
			r.Message = ""
			continue
		}
		r.Message = truncate(r.Message, keep)
	}
}

// DecodeResult parses a termination message.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return r, err
	}
	switch r.Phase {
	case PhaseSucceeded, PhaseFailed, PhaseSkipped:
		return r, nil
	case "":
		return r, errors.New("mover result has no phase")
	default:
		return r, fmt.Errorf("mover result has an unknown phase %q", shorten(string(r.Phase)))
	}
}

// truncate cuts s to at most n bytes on a rune boundary and marks the cut.
func truncate(s string, n int) string {
	const mark = "..."
	if len(s) <= n {
		return s
	}
	n = max(n-len(mark), 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}

// WriteResult writes the encoded result to path, or to stdout when path is "" or "-".
func WriteResult(path string, r Result) error {
	data := append(r.Encode(), '\n')
	if path == "" || path == "-" {
		_, err := os.Stdout.Write(data)
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// DefaultResultFile is /dev/termination-log when it exists, else stdout ("").
func DefaultResultFile() string {
	const termLog = "/dev/termination-log"
	if _, err := os.Stat(termLog); err == nil {
		return termLog
	}
	return ""
}
