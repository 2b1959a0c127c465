//go:build e2e || olm

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// dwoArtifactType is the artifactType of DWO's own backups, which ours must carry (docs/mover-contract.md).
const dwoArtifactType = "application/vnd.devworkspace.backup.artifact.v1+json"

// oras runs the oras CLI against the local registry (plain HTTP on loopback).
func (c *cluster) oras(ctx context.Context, args ...string) (string, error) {
	return command(ctx, c.orasBin, append(args, "--plain-http")...)
}

// pullTree restores an artifact exactly as DWO's restore does (oras pull, then tar -xzf
// devworkspace-backup.tar.gz) into a temporary directory and returns its snapshot.
func (c *cluster) pullTree(ctx context.Context, ref string) map[string]entry {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	pulled, extracted := filepath.Join(dir, "pulled"), filepath.Join(dir, "extracted")
	Expect(os.Mkdir(extracted, 0o755)).To(Succeed())
	_, err := c.oras(ctx, "pull", ref, "--output", pulled)
	Expect(err).NotTo(HaveOccurred())
	_, err = command(ctx, "tar", "-xzf", filepath.Join(pulled, "devworkspace-backup.tar.gz"), "-C", extracted)
	Expect(err).NotTo(HaveOccurred())
	return snapshot(extracted)
}

// resolve returns the digest a reference points at, or "" when the registry does not have it.
func (c *cluster) resolve(ctx context.Context, ref string) string {
	out, err := c.oras(ctx, "resolve", ref)
	if err != nil {
		Expect(out).To(Or(ContainSubstring("not found"), ContainSubstring("NOT_FOUND"), ContainSubstring("unknown")),
			"oras resolve %s failed for another reason", ref)
		return ""
	}
	return strings.TrimSpace(out)
}

// tags lists the tags of a repository.
func (c *cluster) tags(ctx context.Context, repository string) []string {
	GinkgoHelper()
	out, err := c.oras(ctx, "repo", "tags", repository)
	Expect(err).NotTo(HaveOccurred())
	return strings.Fields(out)
}

// manifest fetches and decodes an artifact's manifest.
func (c *cluster) manifest(ctx context.Context, ref string) map[string]any {
	GinkgoHelper()
	out, err := c.oras(ctx, "manifest", "fetch", ref)
	Expect(err).NotTo(HaveOccurred())
	m := map[string]any{}
	Expect(json.Unmarshal([]byte(out), &m)).To(Succeed())
	return m
}

// splitRef splits repository:tag (a registry's port is not a tag).
func splitRef(ref string) (repository, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

// slowRegistry is a reverse proxy in front of the local registry that lets request bodies (blob
// uploads) through at a fixed rate, so a backup runs long enough to be interrupted on purpose.
// It listens on 127.0.0.1, which the mover pods reach through the host network.
type slowRegistry struct {
	Host     string
	uploaded atomic.Int64
	srv      *http.Server
}

func startSlowRegistry(target string, bytesPerSecond int64) *slowRegistry {
	GinkgoHelper()
	s := &slowRegistry{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	// An aborted upload is expected: its error goes to the spec's output, not to stderr.
	proxy.ErrorLog = log.New(GinkgoWriter, "slow registry: ", 0)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &throttledBody{ReadCloser: r.Body, rate: bytesPerSecond, start: time.Now(), counter: &s.uploaded}
		}
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	s.Host = ln.Addr().String()
	// The outgoing Host header stays the proxy's, so the registry's upload Locations point here.
	s.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

func (s *slowRegistry) Uploaded() int64 { return s.uploaded.Load() }

func (s *slowRegistry) Close() { _ = s.srv.Close() }

// throttledBody reads at most rate bytes per second on average.
type throttledBody struct {
	io.ReadCloser
	rate    int64
	start   time.Time
	read    int64
	counter *atomic.Int64
}

func (t *throttledBody) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	// Rate limiting, not synchronization: wait until the bytes already read are due.
	if due := t.start.Add(time.Duration(t.read * int64(time.Second) / t.rate)); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	n, err := t.ReadCloser.Read(p)
	t.read += int64(n)
	t.counter.Add(int64(n))
	return n, err
}
