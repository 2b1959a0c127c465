package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// dockerConfigJSON is a config.json holding user:pass for host.
func dockerConfigJSON(host, user, pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{"https://%s/v1/":{"auth":%q}}}`, host, auth)
}

// basicAuthRegistry is an in-process registry that wants user:pass.
func basicAuthRegistry(t *testing.T, user, pass string) *registrytest.InProcess {
	t.Helper()
	return registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
}

// The operator passes the Secret's .dockerconfigjson in memory (DockerConfigJSON);
// AuthDir, the mover's mounted Secret, wins when both are set.
func TestInMemoryDockerConfig(t *testing.T) {
	const user, pass = "operator", "in-memory-S3cret"
	reg := basicAuthRegistry(t, user, pass)
	right := dockerConfigJSON(reg.Host, user, pass)
	tests := []struct {
		name      string
		authDir   string
		config    []byte
		newReason Reason // from New
		reason    Reason // from Resolve; ArtifactNotFound means authenticated
	}{
		{"right credentials", "", right, "", ReasonNotFound},
		{"wrong password", "", dockerConfigJSON(reg.Host, user, "wrong-"+pass), "", ReasonUnauthorized},
		{"credentials for another host", "", dockerConfigJSON("other.example", user, pass), "", ReasonUnauthorized},
		{"empty means anonymous", "", nil, "", ReasonUnauthorized},
		{"bare host key", "", fmt.Appendf(nil, `{"auths":{%q:{"username":%q,"password":%q}}}`, reg.Host, user, pass), "", ReasonNotFound},
		{"not JSON", "", []byte("user:" + pass), ReasonInvalidCredentials, ""},
		{"auth not base64", "", []byte(`{"auths":{"h":{"auth":"` + pass + ` not base64"}}}`), ReasonInvalidCredentials, ""},
		{"auth without colon", "", fmt.Appendf(nil, `{"auths":{"h":{"auth":%q}}}`, base64.StdEncoding.EncodeToString([]byte(pass))), ReasonInvalidCredentials, ""},
		{"AuthDir wins over in-memory", writeAuth(t, reg.Host, user, "wrong-"+pass), right, "", ReasonUnauthorized},
		{"in-memory ignored when AuthDir wins", writeAuth(t, reg.Host, user, pass), []byte("garbage"), "", ReasonNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{AuthDir: tt.authDir, DockerConfigJSON: tt.config, Insecure: true, Retry: fast})
			if ReasonOf(err) != tt.newReason {
				t.Fatalf("New: reason %q (%v), want %q", ReasonOf(err), err, tt.newReason)
			}
			if err == nil {
				_, err = c.Resolve(context.Background(), reg.Host+"/a/b:latest")
				if ReasonOf(err) != tt.reason {
					t.Fatalf("Resolve: reason %q (%v), want %s", ReasonOf(err), err, tt.reason)
				}
			}
			assertNoSecret(t, err, pass, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),
				base64.StdEncoding.EncodeToString([]byte(pass)))
		})
	}
}

func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a credential: %v", err)
		}
	}
}
