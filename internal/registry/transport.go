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
// caFile adds a CA to the system roots; insecure turns verification off.
func newBaseTransport(caFile string, insecure bool) (*http.Transport, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if insecure {
		tlsConfig.InsecureSkipVerify = true //nolint:gosec // explicit opt-in, DESIGN 3 registry.insecure
	}
	if caFile != "" {
		pool, err := caPool(caFile)
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

func caPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, newError(ReasonTLSVerificationFailed, "load CA", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errorf(ReasonTLSVerificationFailed, "load CA", "%s holds no PEM certificate", caFile)
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
