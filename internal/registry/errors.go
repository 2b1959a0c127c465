package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Reason is a stable CamelCase word for a class of registry failure. The mover
// copies it into its result and the operator into conditions, so values never change.
type Reason string

// Reasons a registry operation can fail with.
const (
	ReasonUnauthorized          Reason = "Unauthorized"
	ReasonRegistryUnreachable   Reason = "RegistryUnreachable"
	ReasonNotFound              Reason = "ArtifactNotFound"
	ReasonDigestMismatch        Reason = "DigestMismatch"
	ReasonUnsupported           Reason = "Unsupported"
	ReasonPlainHTTPRefused      Reason = "PlainHTTPRefused"
	ReasonTLSVerificationFailed Reason = "TLSVerificationFailed"
	ReasonInvalidReference      Reason = "InvalidReference"
	ReasonInvalidCredentials    Reason = "InvalidCredentials"
	ReasonCanceled              Reason = "Canceled"
	ReasonRegistryError         Reason = "RegistryError"
)

// Error is every error this package returns: an operation, a reason and the cause.
type Error struct {
	reason Reason
	op     string
	err    error
}

func (e *Error) Error() string {
	if e.op == "" {
		return e.err.Error()
	}
	return e.op + ": " + e.err.Error()
}

func (e *Error) Unwrap() error { return e.err }

// Reason is the stable class of the failure.
func (e *Error) Reason() Reason { return e.reason }

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	if re, ok := errors.AsType[*Error](err); ok {
		return re.reason
	}
	return ""
}

func newError(reason Reason, op string, err error) *Error {
	return &Error{reason: reason, op: op, err: err}
}

func errorf(reason Reason, op, format string, args ...any) *Error {
	return newError(reason, op, fmt.Errorf(format, args...))
}

// errPlainHTTP is returned by the transport guard for any http:// request
// when the client is not insecure.
var errPlainHTTP = errors.New("plain HTTP refused: the registry must be served over HTTPS unless insecure is set")

// classify wraps err with the reason that best describes it. The order matters:
// go-containerregistry pings https and http in parallel for local addresses and
// returns both errors, so a refused connection or a failed TLS verification
// must win over the http guard.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if re, ok := errors.AsType[*Error](err); ok {
		if op == "" || re.op != "" {
			return err
		}
		return newError(re.reason, op, re.err)
	}
	return newError(reasonFor(err), op, err)
}

func reasonFor(err error) Reason {
	var (
		opErr    *net.OpError
		terr     *transport.Error
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		certErr  x509.CertificateInvalidError
		verifErr *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ReasonCanceled
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ReasonRegistryUnreachable
	case errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &certErr), errors.As(err, &verifErr):
		return ReasonTLSVerificationFailed
	case errors.Is(err, errPlainHTTP):
		return ReasonPlainHTTPRefused
	case errors.As(err, &terr):
		return reasonForStatus(terr)
	case errors.As(err, &opErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return ReasonRegistryUnreachable
	}
	return ReasonRegistryError
}

func reasonForStatus(terr *transport.Error) Reason {
	for _, d := range terr.Errors {
		switch d.Code { //nolint:exhaustive // other codes are classified by status
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return ReasonUnauthorized
		case transport.DigestInvalidErrorCode:
			return ReasonDigestMismatch
		case transport.UnsupportedErrorCode:
			return ReasonUnsupported
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return ReasonNotFound
		}
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ReasonUnauthorized
	case http.StatusNotFound:
		return ReasonNotFound
	case http.StatusMethodNotAllowed:
		return ReasonUnsupported
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ReasonRegistryUnreachable
	}
	return ReasonRegistryError
}

// retryable reports whether a failed request may succeed when sent again.
func retryable(err error) bool {
	if terr, ok := errors.AsType[*transport.Error](err); ok {
		return terr.Temporary()
	}
	return reasonFor(err) == ReasonRegistryUnreachable
}
