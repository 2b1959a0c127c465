package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// newBaseTransport builds the TLS-aware transport every request goes through.
// caFile and caPEM add CAs to the system roots; insecure turns verification off.
func newBaseTransport(caFile string, caPEM []byte, insecure bool) (*http.Transport, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if insecure {
		tlsConfig.InsecureSkipVerify = true //nolint:gosec // explicit opt-in, spec.registry.insecure
	}
	if caFile != "" || len(caPEM) > 0 {
		pool, err := caPool(caFile, caPEM)
		if err != nil {
			return nil, err
		}
		tlsConfig.RootCAs = pool
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		TLSClientConfig:       tlsConfig,
	}, nil
}

// caPool is the system roots plus every certificate of caFile and caPEM; each
// source given must hold at least one, so a wrong mount fails loudly.
func caPool(caFile string, caPEM []byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, newError(ReasonTLSVerificationFailed, "load CA", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errorf(ReasonTLSVerificationFailed, "load CA", "%s holds no PEM certificate", caFile)
		}
	}
	if len(caPEM) > 0 && !pool.AppendCertsFromPEM(caPEM) {
		return nil, errorf(ReasonTLSVerificationFailed, "load CA", "the in-memory CA holds no PEM certificate")
	}
	return pool, nil
}

// httpsOnly refuses every plain-HTTP request (including redirects and token
// endpoints) unless the client is insecure. go-containerregistry would otherwise
// fall back to http by itself for localhost, loopback and private addresses.
type httpsOnly struct {
	next     http.RoundTripper
	insecure bool
}

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !t.insecure {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s://%s: %w", req.Method, req.URL.Scheme, req.URL.Host, errPlainHTTP)
	}
	return t.next.RoundTrip(req)
}
