package registry

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

var fast = Backoff{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond}

func openRepo(t *testing.T, opts Options, repo string) *Repo {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	name, err := c.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Open(context.Background(), name, Delete)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pushManifest(t *testing.T, r *Repo, tag string) Manifest { //nolint:unparam // tests read better with the tag named
	t.Helper()
	ctx := context.Background()
	cfg, err := r.PushBlob(ctx, "application/vnd.oci.empty.v1+json", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := r.PushBlobStream(ctx, "application/octet-stream", strings.NewReader("layer "+tag))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/octet-stream","digest":%q,"size":%d}]}`,
		MediaTypeOCIManifest, cfg.Digest, layer.Digest, layer.Size)
	d, err := r.PutManifest(ctx, tag, MediaTypeOCIManifest, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return Manifest{Descriptor: Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(body))}, Bytes: []byte(body)}
}

func TestManifestOperations(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	r := openRepo(t, Options{Insecure: true, Retry: fast}, reg.Host+"/backups/ns/ws")
	ctx := context.Background()
	m := pushManifest(t, r, "t1")

	d, err := r.Resolve(ctx, "t1")
	if err != nil || d.Digest != m.Digest {
		t.Fatalf("Resolve = %v, %v; want %s", d.Digest, err, m.Digest)
	}
	if err := r.TagManifest(ctx, "t2", m.Digest); err != nil {
		t.Fatal(err)
	}
	got, err := r.GetManifest(ctx, "t2")
	if err != nil || string(got.Bytes) != string(m.Bytes) {
		t.Fatalf("GetManifest(t2) = %q, %v", got.Bytes, err)
	}
	if err := r.DeleteTag(ctx, "t2"); err != nil {
		t.Fatalf("DeleteTag: %v", err)
	}
	if _, err := r.Resolve(ctx, "t2"); ReasonOf(err) != ReasonNotFound {
		t.Fatalf("Resolve deleted tag: reason %q (%v), want %s", ReasonOf(err), err, ReasonNotFound)
	}
	if _, err := r.Resolve(ctx, "t1"); err != nil {
		t.Fatalf("t1 gone after deleting t2: %v", err)
	}
}

func TestGetManifestVerifiesDigest(t *testing.T) {
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:") {
				w.Header().Set("Content-Type", MediaTypeOCIManifest)
				_, _ = w.Write([]byte(`{"schemaVersion":2,"tampered":true}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r := openRepo(t, Options{Insecure: true, Retry: fast}, reg.Host+"/a/b")
	m := pushManifest(t, r, "t1")
	if _, err := r.GetManifest(context.Background(), m.Digest.String()); ReasonOf(err) != ReasonDigestMismatch {
		t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, ReasonDigestMismatch)
	}
}

// FetchBlob answers only once the registry has sent 200 with the size the
// descriptor gives: a caller may then start undoing things, such as emptying a
// restore target.
func TestFetchBlobChecksSize(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	r := openRepo(t, Options{Insecure: true, Retry: fast}, reg.Host+"/a/b")
	ctx := context.Background()
	d, err := r.PushBlob(ctx, "application/octet-stream", []byte("blob content"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.FetchBlob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || string(data) != "blob content" {
		t.Fatalf("read %q, %v", data, err)
	}
	wrong := d
	wrong.Size++
	if _, err := r.FetchBlob(ctx, wrong); ReasonOf(err) != ReasonDigestMismatch || !strings.Contains(err.Error(), "12 bytes") {
		t.Fatalf("wrong size: reason %q (%v), want %s naming the size sent", ReasonOf(err), err, ReasonDigestMismatch)
	}
}

func TestPlainHTTPRefusedWithoutInsecure(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	c, err := New(Options{Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.ParseRepository(reg.Host + "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Open(context.Background(), repo, Pull)
	if ReasonOf(err) != ReasonPlainHTTPRefused {
		t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, ReasonPlainHTTPRefused)
	}
	if n := reg.Count(http.MethodGet, "/v2/"); n != 0 {
		t.Fatalf("%d plain HTTP requests reached the registry", n)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := New(Options{Insecure: true, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := c.ParseRepository("127.0.0.1:1/a/b")
	_, err = c.Open(context.Background(), repo, Pull)
	if ReasonOf(err) != ReasonRegistryUnreachable {
		t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, ReasonRegistryUnreachable)
	}
	c2, _ := New(Options{Retry: fast})
	_, err = c2.Open(context.Background(), repo, Pull)
	if ReasonOf(err) != ReasonRegistryUnreachable {
		t.Fatalf("without insecure: reason %q (%v), want %s", ReasonOf(err), err, ReasonRegistryUnreachable)
	}
}

func TestRetriesTransient5xx(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && failures.Add(-1) >= 0 {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r := openRepo(t, Options{Insecure: true, Retry: fast}, reg.Host+"/a/b")
	pushManifest(t, r, "t1")
	if n := reg.Count(http.MethodPut, "/manifests/t1"); n != 3 {
		t.Fatalf("manifest PUT sent %d times, want 3 (two 503s, then success)", n)
	}
}

func TestPersistent5xxFails(t *testing.T) {
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r := openRepo(t, Options{Insecure: true, Retry: fast}, reg.Host+"/a/b")
	_, err := r.GetManifest(context.Background(), "latest")
	if ReasonOf(err) != ReasonRegistryError {
		t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, ReasonRegistryError)
	}
	if n := reg.Count(http.MethodGet, "/manifests/"); n != fast.Attempts {
		t.Fatalf("%d attempts, want %d", n, fast.Attempts)
	}
}

func writeAuth(t *testing.T, host, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths":{"https://%s/v1/":{"auth":%q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBasicAuthFromConfigJSON(t *testing.T) {
	const user, pass = "robot", "s3cr3t-Pa55"
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	tests := []struct {
		name    string
		authDir string
		reason  Reason
	}{
		{"right credentials", writeAuth(t, reg.Host, user, pass), ""},
		{"wrong password", writeAuth(t, reg.Host, user, "wrong-"+pass), ReasonUnauthorized},
		{"no credentials", "", ReasonUnauthorized},
		{"credentials for another host", writeAuth(t, "other.example", user, pass), ReasonUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{AuthDir: tt.authDir, Insecure: true, Retry: fast})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Resolve(context.Background(), reg.Host+"/a/b:latest")
			if tt.reason == "" {
				if ReasonOf(err) != ReasonNotFound {
					t.Fatalf("authenticated resolve: reason %q (%v), want %s", ReasonOf(err), err, ReasonNotFound)
				}
				return
			}
			if ReasonOf(err) != tt.reason {
				t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, tt.reason)
			}
			for _, secret := range []string{pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a credential: %v", err)
				}
			}
		})
	}
}

func TestBadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	secret := `{"auths":{"h":{"auth":"not base64 TOPSECRET"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{AuthDir: dir})
	if ReasonOf(err) != ReasonInvalidCredentials || strings.Contains(err.Error(), "TOPSECRET") {
		t.Fatalf("err = %v", err)
	}
	_, err = New(Options{AuthDir: t.TempDir()})
	if ReasonOf(err) != ReasonInvalidCredentials {
		t.Fatalf("missing config.json: %v", err)
	}
}

// A TLS registry is trusted through CAFile, CAPEM (from a Secret, in memory, in addition to
// CAFile and the system roots) or Insecure, and nothing else.
func TestTLSTrust(t *testing.T) {
	srv := httptest.NewTLSServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	serverCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	otherCA := registrytest.NewCA(t).CertPEM
	caFile, otherFile := filepath.Join(t.TempDir(), "ca.crt"), filepath.Join(t.TempDir(), "other.crt")
	for file, data := range map[string][]byte{caFile: serverCA, otherFile: otherCA} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		opts      Options
		newReason Reason
		reason    Reason
	}{
		{"CA file", Options{CAFile: caFile}, "", ReasonNotFound},
		{"insecure", Options{Insecure: true}, "", ReasonNotFound},
		{"CAPEM alone", Options{CAPEM: serverCA}, "", ReasonNotFound},
		{"CAPEM with an unrelated CAFile", Options{CAFile: otherFile, CAPEM: serverCA}, "", ReasonNotFound},
		{"unrelated CAPEM", Options{CAPEM: otherCA}, "", ReasonTLSVerificationFailed},
		{"CAPEM without a certificate", Options{CAPEM: []byte("not a certificate")}, ReasonTLSVerificationFailed, ""},
		{"no CA", Options{}, "", ReasonTLSVerificationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Retry = fast
			c, err := New(tt.opts)
			if ReasonOf(err) != tt.newReason {
				t.Fatalf("New: reason %q (%v), want %q", ReasonOf(err), err, tt.newReason)
			}
			if err != nil {
				return
			}
			_, err = c.Resolve(context.Background(), host+"/a/b:latest")
			if ReasonOf(err) != tt.reason {
				t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, tt.reason)
			}
		})
	}
}

func TestDistributionDeleteSemantics(t *testing.T) {
	d := registrytest.StartDistribution(t)
	r := openRepo(t, Options{Insecure: true, Retry: fast}, d.Host+"/backups/ns/ws")
	ctx := context.Background()
	m := pushManifest(t, r, "t1")
	if err := r.TagManifest(ctx, "t2", m.Digest); err != nil {
		t.Fatal(err)
	}
	err := r.DeleteTag(ctx, "t2")
	if ReasonOf(err) != ReasonUnsupported {
		t.Fatalf("distribution 2.x DeleteTag: reason %q (%v), want %s", ReasonOf(err), err, ReasonUnsupported)
	}
	if err := r.DeleteManifest(ctx, m.Digest.String()); err != nil {
		t.Fatalf("DeleteManifest: %v", err)
	}
	for _, tag := range []string{"t1", "t2"} {
		if _, err := r.Resolve(ctx, tag); ReasonOf(err) != ReasonNotFound {
			t.Fatalf("%s after delete by digest: reason %q (%v)", tag, ReasonOf(err), err)
		}
	}
	if err := r.DeleteManifest(ctx, m.Digest.String()); ReasonOf(err) != ReasonNotFound {
		t.Fatalf("second delete: reason %q (%v), want %s", ReasonOf(err), err, ReasonNotFound)
	}
}

func TestDistributionPlainHTTPRefused(t *testing.T) {
	d := registrytest.StartDistribution(t)
	c, err := New(Options{Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), d.Host+"/a/b:latest")
	if ReasonOf(err) != ReasonPlainHTTPRefused {
		t.Fatalf("reason %q (%v), want %s", ReasonOf(err), err, ReasonPlainHTTPRefused)
	}
}

func TestReasonOfForeignError(t *testing.T) {
	if r := ReasonOf(errors.New("x")); r != "" {
		t.Fatalf("ReasonOf(plain) = %q", r)
	}
	if r := ReasonOf(fmt.Errorf("wrapped: %w", newError(ReasonNotFound, "op", errors.New("x")))); r != ReasonNotFound {
		t.Fatalf("ReasonOf(wrapped) = %q", r)
	}
}
