package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// Authentication and TLS against a real distribution registry (docker-registry).

const (
	testUser     = "backup-robot"
	testPassword = "Htpasswd-S3cret!"
)

type authCase struct {
	name   string
	opts   Options
	reason Reason // "" means a push and a resolve succeed
}

// runAuthCases pushes with each case's options, or expects its failure reason.
func runAuthCases(t *testing.T, host string, cases []authCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Retry = fast
			c, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			repo, err := c.ParseRepository(host + "/backups/ns/ws")
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Open(context.Background(), repo, Push)
			if err == nil && tt.reason == "" {
				m := pushManifest(t, r, "t1")
				if d, err := r.Resolve(context.Background(), "t1"); err != nil || d.Digest != m.Digest {
					t.Fatalf("resolve after push: %v, %v", d.Digest, err)
				}
				return
			}
			if err == nil {
				_, err = r.Resolve(context.Background(), "t1")
			}
			if ReasonOf(err) != tt.reason {
				t.Fatalf("reason %q (%v), want %q", ReasonOf(err), err, tt.reason)
			}
			assertNoSecret(t, err, testPassword)
		})
	}
}

func credsFor(host, password string) []byte {
	return dockerConfigJSON(host, testUser, password)
}

func TestDistributionHtpasswd(t *testing.T) {
	ca := registrytest.NewCA(t)
	d := registrytest.StartDistributionWith(t, registrytest.DistributionOptions{TLS: ca,
		Users: map[string]string{testUser: testPassword}})
	runAuthCases(t, d.Host, []authCase{
		{"right credentials", Options{CAPEM: d.CAPEM, DockerConfigJSON: credsFor(d.Host, testPassword)}, ""},
		{"right credentials from AuthDir", Options{CAFile: d.CAFile, AuthDir: writeAuth(t, d.Host, testUser, testPassword)}, ""},
		{"wrong password", Options{CAPEM: d.CAPEM, DockerConfigJSON: credsFor(d.Host, "not-"+testPassword)}, ReasonUnauthorized},
		{"unknown user", Options{CAPEM: d.CAPEM, DockerConfigJSON: dockerConfigJSON(d.Host, "nobody", testPassword)}, ReasonUnauthorized},
		{"no credentials", Options{CAPEM: d.CAPEM}, ReasonUnauthorized},
	})
}

func TestDistributionTLS(t *testing.T) {
	ca := registrytest.NewCA(t)
	d := registrytest.StartDistributionWith(t, registrytest.DistributionOptions{TLS: ca})
	runAuthCases(t, d.Host, []authCase{
		{"CA file, not insecure", Options{CAFile: d.CAFile}, ""},
		{"CA in memory, not insecure", Options{CAPEM: d.CAPEM}, ""},
		{"no CA", Options{}, ReasonTLSVerificationFailed},
		{"another CA", Options{CAPEM: registrytest.NewCA(t).CertPEM}, ReasonTLSVerificationFailed},
		{"insecure skips verification", Options{Insecure: true}, ""},
	})
}

// The reason alone is not enough for a person: the message must say why.
func TestDistributionTLSMessage(t *testing.T) {
	d := registrytest.StartDistributionWith(t, registrytest.DistributionOptions{TLS: registrytest.NewCA(t)})
	c, err := New(Options{Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), d.Host+"/backups/ns/ws:latest")
	if ReasonOf(err) != ReasonTLSVerificationFailed || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("reason %q, message %q: want TLSVerificationFailed naming the unknown authority", ReasonOf(err), err)
	}
}

// Bearer tokens: distribution delegates to a token server (here an in-test
// one that signs ES256 JWTs), the flow most hosted registries use.
func TestDistributionBearerToken(t *testing.T) {
	ca := registrytest.NewCA(t)
	ts := registrytest.NewTokenServer(t, ca, map[string]string{testUser: testPassword})
	d := registrytest.StartDistributionWith(t, registrytest.DistributionOptions{TLS: ca, Token: ts})
	runAuthCases(t, d.Host, []authCase{
		{"right credentials", Options{CAPEM: d.CAPEM, DockerConfigJSON: credsFor(d.Host, testPassword)}, ""},
		{"wrong password", Options{CAPEM: d.CAPEM, DockerConfigJSON: credsFor(d.Host, "not-"+testPassword)}, ReasonUnauthorized},
		{"no credentials", Options{CAPEM: d.CAPEM}, ReasonUnauthorized},
	})
	if ts.Issued.Load() == 0 {
		t.Fatal("the token server issued no token: the registry did not use bearer auth")
	}
}
