package registrytest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd renders users (user -> password) as an htpasswd file with bcrypt
// hashes, the only scheme distribution accepts. MinCost keeps tests fast.
func Htpasswd(t TB, users map[string]string) []byte {
	t.Helper()
	var b strings.Builder
	for _, u := range slices.Sorted(func(yield func(string) bool) {
		for u := range users {
			if !yield(u) {
				return
			}
		}
	}) {
		hash, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, hash)
	}
	return []byte(b.String())
}

// TokenServer is a minimal Docker registry token server (the bearer flow of
// distribution's token auth): it checks basic credentials and issues an ES256
// JWT granting the requested scopes, signed by a key the registry trusts
// through its rootcertbundle (the certificate travels in the x5c header).
type TokenServer struct {
	URL     string // the realm, https://localhost:port/token
	Service string
	Issuer  string
	// Issued counts the tokens handed out.
	Issued atomic.Int32

	users  map[string]string
	signer *CA
}

// NewTokenServer serves tokens over HTTPS with a certificate from ca.
func NewTokenServer(t TB, ca *CA, users map[string]string) *TokenServer {
	t.Helper()
	ts := &TokenServer{Service: "dwbackup-test-registry", Issuer: "dwbackup-test-token-issuer", users: users, signer: NewCA(t)}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ts.serve))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.ServerCert(t)}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// go-containerregistry refuses a realm on a private or loopback IP literal
	// unless it is the registry's own host:port (an SSRF guard), so the realm
	// names the token server by host name.
	ts.URL = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/token"
	return ts
}

func (ts *TokenServer) registryConfig(t TB, dir string) string {
	t.Helper()
	bundle := filepath.Join(dir, "token-signer.crt")
	if err := os.WriteFile(bundle, ts.signer.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
		ts.URL, ts.Service, ts.Issuer, bundle)
}

type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if want, known := ts.users[user]; !ok || !known || want != pass {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
		return
	}
	access := []tokenAccess{}
	for _, scope := range r.URL.Query()["scope"] {
		parts := strings.Split(scope, ":")
		if len(parts) != 3 {
			continue
		}
		access = append(access, tokenAccess{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
	}
	token, err := ts.sign(user, access)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.Issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": token, "access_token": token, "expires_in": 300})
}

// sign builds a compact JWS: base64url(header).base64url(claims).base64url(r||s).
func (ts *TokenServer) sign(subject string, access []tokenAccess) (string, error) {
	now := time.Now()
	header, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.signer.Cert.Raw)}})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{"iss": ts.Issuer, "sub": subject, "aud": ts.Service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprintf("%d", now.UnixNano()), "access": access})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	payload := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(payload))
	r, s, err := ecdsa.Sign(rand.Reader, ts.signer.Key, digest[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return payload + "." + enc.EncodeToString(sig), nil
}
