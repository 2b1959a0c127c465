package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker config.json (the .dockerconfigjson key of a
// kubernetes.io/dockerconfigjson Secret) that holds static credentials.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// credentials maps a registry host to its authenticator.
type credentials map[string]authn.Authenticator

// loadCredentials returns the credentials of the options: dir/config.json when
// AuthDir is set, else the in-memory config.json, else none (anonymous access).
// A dir without config.json is a mistake in the Secret mount and fails.
// Errors never quote the content, which holds secrets.
func loadCredentials(dir string, inMemory []byte) (credentials, error) {
	if dir == "" {
		if len(inMemory) == 0 {
			return credentials{}, nil
		}
		return parseCredentials(inMemory, "the in-memory docker config")
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(ReasonInvalidCredentials, "load credentials", "%s does not exist", path)
	}
	if err != nil {
		return nil, newError(ReasonInvalidCredentials, "load credentials", err)
	}
	return parseCredentials(data, path)
}

// parseCredentials reads a docker config.json; source names it in errors, which
// quote neither the content nor a decoded value.
func parseCredentials(data []byte, source string) (credentials, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, errorf(ReasonInvalidCredentials, "load credentials", "%s is not a docker config.json", source)
	}
	creds := credentials{}
	for key, entry := range cfg.Auths {
		ac, err := entry.authConfig()
		if err != nil {
			return nil, errorf(ReasonInvalidCredentials, "load credentials", "%s: entry %q: %w", source, key, err)
		}
		creds[normalizeHost(key)] = authn.FromConfig(ac)
	}
	return creds, nil
}

func (a dockerAuth) authConfig() (authn.AuthConfig, error) {
	ac := authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}
	if a.Auth == "" {
		return ac, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.Auth))
	if err != nil {
		return ac, errors.New(`"auth" is not base64`)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ac, errors.New(`"auth" is not "user:password"`)
	}
	ac.Username, ac.Password = user, pass
	return ac, nil
}

// normalizeHost turns the keys docker writes ("https://host/v1/", "host") into host[:port].
func normalizeHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "docker.io", "registry-1.docker.io":
		h = "index.docker.io"
	}
	return strings.ToLower(h)
}

// For returns the authenticator for a registry host, anonymous when none matches.
func (c credentials) For(host string) authn.Authenticator {
	if a, ok := c[normalizeHost(host)]; ok {
		return a
	}
	return authn.Anonymous
}
