// Package registrytest starts registries for tests: go-containerregistry's
// in-process registry, and a real distribution registry (Debian's
// docker-registry) on a free loopback port. It also finds the oras binary.
package registrytest

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// InProcess is an in-memory registry served over plain HTTP on 127.0.0.1.
type InProcess struct {
	Host string // 127.0.0.1:port
	mu   sync.Mutex
	reqs []string // "METHOD path" of every request
}

// NewInProcess starts an in-process registry; wrap, when set, wraps its handler
// (to count, fail or corrupt requests).
func NewInProcess(t TB, wrap func(http.Handler) http.Handler) *InProcess {
	t.Helper()
	r := &InProcess{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// Count returns how many requests had the method and a path containing substr.
func (r *InProcess) Count(method, substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		m, p, _ := strings.Cut(q, " ")
		if m == method && strings.Contains(p, substr) {
			n++
		}
	}
	return n
}

// Distribution is a docker-registry process.
type Distribution struct {
	Host string // 127.0.0.1:port
	Root string // filesystem storage root
	// CAFile is the PEM of the CA that signed the registry's certificate (TLS only).
	CAFile string
	// CAPEM is the same CA in memory (TLS only).
	CAPEM []byte

	bin, cfgPath, scheme string
	cmd                  *exec.Cmd
	exited               chan struct{} // closed once cmd has been reaped
}

// DistributionOptions turn on TLS and authentication.
type DistributionOptions struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 signed by this CA.
	TLS *CA
	// Users turns on htpasswd authentication with these user -> password pairs.
	Users map[string]string
	// Token turns on bearer-token authentication against this token server.
	Token *TokenServer
}

// SkipMissingToolsEnv, set to 1, lets a test that needs docker-registry or oras skip when the
// tool is missing; otherwise the test fails. `make test` installs both and never sets it, so
// that no test is silently left out.
const SkipMissingToolsEnv = "DWBACKUP_SKIP_MISSING_TOOLS"

// missingTool fails the test for want of a tool, or skips it when SkipMissingToolsEnv=1.
func missingTool(t TB, msg string) {
	t.Helper()
	if os.Getenv(SkipMissingToolsEnv) == "1" {
		t.Skip(msg + " (skipped: " + SkipMissingToolsEnv + "=1)")
	}
	t.Fatal(msg + " (or set " + SkipMissingToolsEnv + "=1 to skip the tests that need it)")
}

// StartDistribution starts Debian's docker-registry (CNCF distribution 2.x) with
// deletes enabled on a free loopback port and a temporary storage root, and stops
// it by PID when the test ends. The test fails when the binary is absent (missingTool).
func StartDistribution(t TB) *Distribution {
	t.Helper()
	return StartDistributionWith(t, DistributionOptions{})
}

// StartDistributionWith starts docker-registry with TLS and authentication as asked.
func StartDistributionWith(t TB, o DistributionOptions) *Distribution {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		missingTool(t, "docker-registry not found in PATH: run `make test`, which installs it as root, or apt-get install -y docker-registry")
	}
	dir := t.TempDir()
	d := &Distribution{Host: freeLoopbackAddr(t), Root: filepath.Join(dir, "storage"), bin: bin,
		cfgPath: filepath.Join(dir, "config.yml"), scheme: "http"}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, d.Root, d.Host)
	if o.TLS != nil {
		caFile, certFile, keyFile := o.TLS.WriteFiles(t, dir)
		d.CAFile, d.CAPEM, d.scheme = caFile, o.TLS.CertPEM, "https"
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
	}
	cfg += authConfig(t, dir, o)
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Start(t)
	t.Cleanup(d.Kill)
	return d
}

func authConfig(t TB, dir string, o DistributionOptions) string {
	t.Helper()
	switch {
	case o.Users != nil:
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, Htpasswd(t, o.Users), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", path)
	case o.Token != nil:
		return o.Token.registryConfig(t, dir)
	}
	return ""
}

// Start runs the registry process (again, after Kill) on the same address and
// storage and waits until it answers.
func (d *Distribution) Start(t TB) {
	t.Helper()
	cmd := exec.Command(d.bin, "serve", d.cfgPath)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait() //nolint:errcheck // a killed registry exits non-zero by design
		close(exited)
	}(d.exited)
	waitReady(t, d.scheme+"://"+d.Host+"/v2/", d.exited)
}

// Kill stops the registry process with SIGKILL, as a crash would, and reaps it.
func (d *Distribution) Kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

// Blobs counts the blobs in the registry's storage.
func (d *Distribution) Blobs(t TB) int {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(d.Root, "docker/registry/v2/blobs/sha256/*/*/data"))
	if err != nil {
		t.Fatal(err)
	}
	return len(matches)
}

func freeLoopbackAddr(t TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// waitReady polls url until the registry answers (any status, any certificate)
// or its process has exited.
func waitReady(t TB, url string, exited <-chan struct{}) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe only
	}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited before it answered on %s (run with -v for its log)", url)
		default:
		}
		resp, err := client.Get(url) //nolint:noctx // test helper
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("registry at %s did not start", url)
}

// Oras returns the oras binary: $ORAS, else bin/oras at the module root (`make oras` installs the
// Makefile's ORAS_VERSION there). The test fails when it is absent (missingTool).
func Oras(t TB) string {
	t.Helper()
	p := os.Getenv("ORAS")
	if p == "" {
		root, err := ModuleRoot()
		if err != nil {
			missingTool(t, "oras not found ("+err.Error()+"): set ORAS or run `make oras`")
			return ""
		}
		p = filepath.Join(root, "bin", "oras")
	}
	if _, err := exec.LookPath(p); err != nil {
		missingTool(t, "oras not found ("+err.Error()+"): set ORAS or run `make oras`")
		return ""
	}
	return p
}

// ModuleRoot walks up from the working directory to the directory holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// TB is the part of testing.TB the helpers use; ginkgo's GinkgoT() has it too, so envtest specs
// can start a real registry as well.
type TB interface {
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Helper()
	Skip(args ...any)
	TempDir() string
}

// GarbageCollect stops the registry, runs `docker-registry garbage-collect`
// (which deletes the blobs no manifest refers to; distribution wants no
// writes meanwhile) and starts it again on the same storage.
func (d *Distribution) GarbageCollect(t TB) {
	t.Helper()
	d.Kill()
	if out, err := exec.Command(d.bin, "garbage-collect", d.cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("docker-registry garbage-collect: %v\n%s", err, out)
	}
	d.Start(t)
}

// SetUsers replaces the htpasswd users of a registry started with Users and restarts it, as an
// administrator rotating credentials would: from then on only the new passwords are accepted.
func (d *Distribution) SetUsers(t TB, users map[string]string) {
	t.Helper()
	path := filepath.Join(filepath.Dir(d.cfgPath), "htpasswd")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the registry was not started with Users: %v", err)
	}
	if err := os.WriteFile(path, Htpasswd(t, users), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Kill()
	d.Start(t)
}
