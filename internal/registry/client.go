// Package registry is the OCI registry client shared by the mover and the operator:
// credentials from a docker config.json, an extra CA, plain HTTP only when asked,
// retries on transient failures, and errors that carry a stable Reason.
package registry

import (
	"context"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options configure a Client.
type Options struct {
	// AuthDir holds a docker config.json (a mounted dockerconfigjson Secret); empty means
	// DockerConfigJSON, and anonymous when that is empty too.
	AuthDir string
	// DockerConfigJSON is the content of a docker config.json (a Secret's .dockerconfigjson),
	// used when AuthDir is empty: the operator holds it in memory and writes no temp file.
	DockerConfigJSON []byte
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string
	// CAPEM are PEM certificates trusted in addition to the system roots and CAFile,
	// for callers that hold the CA in memory (the operator, from a Secret or ConfigMap).
	CAPEM []byte
	// Insecure allows plain HTTP and unverified TLS. Nothing else does.
	Insecure bool
	// UserAgent is sent with every request.
	UserAgent string
	// Retry bounds the retries of requests that can be sent again; zero values take defaults.
	Retry Backoff
	// Transport replaces the TLS transport (tests); the plain-HTTP guard still applies.
	Transport http.RoundTripper
}

// Backoff bounds retries: Attempts tries in all, waiting Initial, then three times longer, up to Max.
type Backoff struct {
	Attempts int
	Initial  time.Duration
	Max      time.Duration
}

// DefaultBackoff waits 0.5 s, 1.5 s, 4.5 s between four attempts.
var DefaultBackoff = Backoff{Attempts: 4, Initial: 500 * time.Millisecond, Max: 10 * time.Second}

// Access is what a Repo is opened for; it decides the token scopes requested.
type Access int

// Access levels.
const (
	Pull Access = iota
	Push
	Delete
)

// Client opens repositories. It is safe for concurrent use.
type Client struct {
	opts    Options
	creds   credentials
	base    http.RoundTripper
	backoff Backoff
}

// New checks the options (credentials file, CA) and returns a Client.
func New(opts Options) (*Client, error) {
	creds, err := loadCredentials(opts.AuthDir, opts.DockerConfigJSON)
	if err != nil {
		return nil, err
	}
	base := opts.Transport
	if base == nil {
		t, err := newBaseTransport(opts.CAFile, opts.CAPEM, opts.Insecure)
		if err != nil {
			return nil, err
		}
		base = t
	}
	b := opts.Retry
	if b.Attempts <= 0 {
		b.Attempts = DefaultBackoff.Attempts
	}
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "dwbackup"
	}
	return &Client{
		opts:    opts,
		creds:   creds,
		base:    transport.NewUserAgent(httpsOnly{next: base, insecure: opts.Insecure}, opts.UserAgent),
		backoff: b,
	}, nil
}

func (c *Client) nameOptions() []name.Option {
	opts := []name.Option{name.StrictValidation}
	if c.opts.Insecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// ParseRepository parses host[:port]/path, with no tag or digest.
func (c *Client) ParseRepository(s string) (name.Repository, error) {
	repo, err := name.NewRepository(s, c.nameOptions()...)
	if err != nil {
		return repo, newError(ReasonInvalidReference, "parse repository", err)
	}
	return repo, nil
}

// ParseReference parses host[:port]/path:tag or host[:port]/path@sha256:... (a tag is required).
func (c *Client) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, c.nameOptions()...)
	if err != nil {
		return nil, newError(ReasonInvalidReference, "parse reference", err)
	}
	return ref, nil
}

// Open authenticates against repo's registry for the given access.
func (c *Client) Open(ctx context.Context, repo name.Repository, access Access) (*Repo, error) {
	var scope string
	switch access {
	case Pull:
		scope = transport.PullScope
	case Push:
		scope = transport.PushScope
	case Delete:
		scope = transport.DeleteScope
	}
	auth := c.creds.For(repo.RegistryStr())
	r := &Repo{repo: repo, backoff: c.backoff}
	err := r.retry(ctx, "connect to "+repo.RegistryStr(), func() error {
		tr, err := transport.NewWithContext(ctx, repo.Registry, auth, c.base, []string{repo.Scope(scope)})
		if err != nil {
			return err
		}
		r.client = &http.Client{Transport: tr}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// OpenReference parses a reference and opens its repository.
func (c *Client) OpenReference(ctx context.Context, s string, access Access) (*Repo, name.Reference, error) {
	ref, err := c.ParseReference(s)
	if err != nil {
		return nil, nil, err
	}
	r, err := c.Open(ctx, ref.Context(), access)
	return r, ref, err
}

// Resolve returns the manifest descriptor a tag (or digest) reference points at.
func (c *Client) Resolve(ctx context.Context, ref string) (Descriptor, error) {
	r, parsed, err := c.OpenReference(ctx, ref, Pull)
	if err != nil {
		return Descriptor{}, err
	}
	return r.Resolve(ctx, parsed.Identifier())
}

// DeleteTag removes one tag (ref is repo:tag). Registries without tag deletion
// (distribution 2.x) fail with ReasonUnsupported: the caller then decides
// whether deleting the manifest by digest is safe (docs/backups.md, "Retention and artifacts").
func (c *Client) DeleteTag(ctx context.Context, ref string) error {
	r, parsed, err := c.OpenReference(ctx, ref, Delete)
	if err != nil {
		return err
	}
	tag, ok := parsed.(name.Tag)
	if !ok {
		return errorf(ReasonInvalidReference, "delete tag", "%s is not a tag reference", ref)
	}
	return r.DeleteTag(ctx, tag.TagStr())
}

// DeleteManifest removes a manifest by digest (ref is repo@sha256:...), and with it every tag that points at it.
func (c *Client) DeleteManifest(ctx context.Context, ref string) error {
	r, parsed, err := c.OpenReference(ctx, ref, Delete)
	if err != nil {
		return err
	}
	d, ok := parsed.(name.Digest)
	if !ok {
		return errorf(ReasonInvalidReference, "delete manifest", "%s is not a digest reference", ref)
	}
	return r.DeleteManifest(ctx, d.DigestStr())
}
