package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Media types this client asks for when it reads a manifest.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

var manifestAccept = strings.Join([]string{MediaTypeOCIManifest, MediaTypeDockerManifest, MediaTypeOCIIndex}, ", ")

const (
	headerContentType = "Content-Type"
	headerAccept      = "Accept"
)

// maxManifestSize bounds what is read into memory for a manifest.
const maxManifestSize = 4 << 20

// Descriptor identifies content in a repository.
type Descriptor struct {
	MediaType string
	Digest    v1.Hash
	Size      int64
}

// Manifest is a manifest's exact bytes and identity.
type Manifest struct {
	Descriptor
	Bytes []byte
}

// Repo is one repository opened with some access. Safe for concurrent use.
type Repo struct {
	repo    name.Repository
	client  *http.Client
	backoff Backoff
}

// Name is host/path of the repository.
func (r *Repo) Name() string { return r.repo.Name() }

// Reference returns repo:tag or repo@digest for an identifier.
func (r *Repo) Reference(identifier string) string {
	if strings.Contains(identifier, ":") {
		return r.repo.Name() + "@" + identifier
	}
	return r.repo.Name() + ":" + identifier
}

func (r *Repo) url(path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), path)
}

// request is one HTTP exchange; its body is a byte slice so it can be sent again.
type request struct {
	method  string
	url     string
	body    []byte
	headers map[string]string
	ok      []int
}

// send does one attempt and returns the response when its status is expected.
func (r *Repo) send(ctx context.Context, rq request) (*http.Response, error) {
	if rq.body == nil {
		return r.sendBody(ctx, rq, nil, 0)
	}
	return r.sendBody(ctx, rq, bytes.NewReader(rq.body), int64(len(rq.body)))
}

// sendStream sends a body that cannot be replayed, chunked: its size is known only at the end.
func (r *Repo) sendStream(ctx context.Context, rq request, body io.Reader) (*http.Response, error) {
	return r.sendBody(ctx, rq, body, -1)
}

func (r *Repo) sendBody(ctx context.Context, rq request, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	for k, v := range rq.headers {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, rq.ok...); err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// do sends rq with retries and returns the response (the caller closes its body).
func (r *Repo) do(ctx context.Context, op string, rq request) (*http.Response, error) {
	var resp *http.Response
	err := r.retry(ctx, op, func() error {
		var err error
		resp, err = r.send(ctx, rq)
		return err
	})
	return resp, err
}

// retry runs f until it succeeds, fails for good, or the attempts run out.
func (r *Repo) retry(ctx context.Context, op string, f func() error) error {
	delay := r.backoff.Initial
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if attempt >= r.backoff.Attempts || !retryable(err) || ctx.Err() != nil {
			return classify(op, err)
		}
		select {
		case <-ctx.Done():
			return classify(op, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*3, r.backoff.Max)
	}
}

// Resolve returns the descriptor of the manifest a tag or digest points at.
func (r *Repo) Resolve(ctx context.Context, ref string) (Descriptor, error) {
	op := "resolve " + r.Reference(ref)
	resp, err := r.do(ctx, op, request{method: http.MethodHead, url: r.url("manifests/" + ref),
		headers: map[string]string{headerAccept: manifestAccept}, ok: []int{http.StatusOK}})
	if err != nil {
		return Descriptor{}, err
	}
	_ = resp.Body.Close()
	h, herr := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if herr != nil || resp.ContentLength < 0 {
		// Some registries omit the digest on HEAD: read the manifest instead.
		m, err := r.GetManifest(ctx, ref)
		return m.Descriptor, err
	}
	return Descriptor{MediaType: resp.Header.Get(headerContentType), Digest: h, Size: resp.ContentLength}, nil
}

// GetManifest reads a manifest by tag or digest. Its digest is computed from the
// bytes received, and checked against the reference when that is a digest.
func (r *Repo) GetManifest(ctx context.Context, ref string) (Manifest, error) {
	op := "get manifest " + r.Reference(ref)
	var m Manifest
	err := r.retry(ctx, op, func() error {
		resp, err := r.send(ctx, request{method: http.MethodGet, url: r.url("manifests/" + ref),
			headers: map[string]string{headerAccept: manifestAccept}, ok: []int{http.StatusOK}})
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
		if err != nil {
			return err
		}
		if len(data) > maxManifestSize {
			return fmt.Errorf("manifest larger than %d bytes", maxManifestSize)
		}
		m = Manifest{Bytes: data, Descriptor: Descriptor{
			MediaType: resp.Header.Get(headerContentType), Digest: sha256Hash(data), Size: int64(len(data))}}
		return nil
	})
	if err != nil {
		return Manifest{}, err
	}
	if want, err := v1.NewHash(ref); err == nil && want != m.Digest {
		return Manifest{}, errorf(ReasonDigestMismatch, op, "registry sent a manifest with digest %s", m.Digest)
	}
	return m, nil
}

// PutManifest stores manifest bytes under a tag (or their digest) and returns their digest.
func (r *Repo) PutManifest(ctx context.Context, ref, mediaType string, data []byte) (v1.Hash, error) {
	op := "put manifest " + r.Reference(ref)
	resp, err := r.do(ctx, op, request{method: http.MethodPut, url: r.url("manifests/" + ref), body: data,
		headers: map[string]string{headerContentType: mediaType}, ok: []int{http.StatusCreated, http.StatusOK, http.StatusAccepted}})
	if err != nil {
		return v1.Hash{}, err
	}
	_ = resp.Body.Close()
	return sha256Hash(data), nil
}

// TagManifest points tag at the manifest with the given digest, keeping its exact bytes.
func (r *Repo) TagManifest(ctx context.Context, tag string, digest v1.Hash) error {
	m, err := r.GetManifest(ctx, digest.String())
	if err != nil {
		return err
	}
	_, err = r.PutManifest(ctx, tag, m.MediaType, m.Bytes)
	return err
}

// DeleteTag deletes one tag with the OCI distribution tag deletion. A registry
// that does not support it answers 400 or 405, reported as ReasonUnsupported.
func (r *Repo) DeleteTag(ctx context.Context, tag string) error {
	op := "delete tag " + r.Reference(tag)
	resp, err := r.do(ctx, op, request{method: http.MethodDelete, url: r.url("manifests/" + tag),
		ok: []int{http.StatusAccepted, http.StatusOK, http.StatusNoContent}})
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && (terr.StatusCode == http.StatusBadRequest || terr.StatusCode == http.StatusMethodNotAllowed) {
			return errorf(ReasonUnsupported, op, "the registry does not delete tags (HTTP %d)", terr.StatusCode)
		}
		return err
	}
	_ = resp.Body.Close()
	return nil
}

// DeleteManifest deletes a manifest by digest; every tag pointing at it goes with it.
func (r *Repo) DeleteManifest(ctx context.Context, digest string) error {
	op := "delete manifest " + r.Reference(digest)
	if _, err := v1.NewHash(digest); err != nil {
		return newError(ReasonInvalidReference, op, err)
	}
	resp, err := r.do(ctx, op, request{method: http.MethodDelete, url: r.url("manifests/" + digest),
		ok: []int{http.StatusAccepted, http.StatusOK, http.StatusNoContent}})
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	return nil
}

// BlobExists reports whether the repository has a blob.
func (r *Repo) BlobExists(ctx context.Context, digest v1.Hash) (bool, error) {
	resp, err := r.do(ctx, "check blob "+digest.String(), request{method: http.MethodHead,
		url: r.url("blobs/" + digest.String()), ok: []int{http.StatusOK}})
	if ReasonOf(err) == ReasonNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = resp.Body.Close()
	return true, nil
}

// PushBlob uploads a small blob in one request unless the registry has it.
func (r *Repo) PushBlob(ctx context.Context, mediaType string, data []byte) (Descriptor, error) {
	d := Descriptor{MediaType: mediaType, Digest: sha256Hash(data), Size: int64(len(data))}
	if ok, err := r.BlobExists(ctx, d.Digest); err != nil || ok {
		return d, err
	}
	op := "push blob " + d.Digest.String()
	loc, err := r.startUpload(ctx, op)
	if err != nil {
		return d, err
	}
	resp, err := r.do(ctx, op, request{method: http.MethodPut, url: withDigest(loc, d.Digest), body: data,
		headers: map[string]string{headerContentType: "application/octet-stream"}, ok: []int{http.StatusCreated}})
	if err != nil {
		return d, err
	}
	_ = resp.Body.Close()
	return d, nil
}

// PushBlobStream uploads a blob of unknown size and digest in one pass: one
// chunked PATCH carries the stream while its sha256 is computed, then a PUT
// commits it under that digest. The stream cannot be replayed, so the PATCH is
// not retried: a failure fails the upload and the registry discards it.
func (r *Repo) PushBlobStream(ctx context.Context, mediaType string, content io.Reader) (Descriptor, error) {
	op := "push blob to " + r.Name()
	loc, err := r.startUpload(ctx, op)
	if err != nil {
		return Descriptor{}, err
	}
	hr := &hashingReader{r: content, h: sha256.New()}
	resp, err := r.sendStream(ctx, request{method: http.MethodPatch, url: loc,
		headers: map[string]string{headerContentType: "application/octet-stream"},
		ok:      []int{http.StatusAccepted, http.StatusNoContent, http.StatusCreated}}, hr)
	if err != nil {
		return Descriptor{}, classify(op, preferReadError(hr, err))
	}
	_ = resp.Body.Close()
	if hr.err != nil {
		// The body ended early with an error from the producer: never commit it.
		return Descriptor{}, classify(op, hr.err)
	}
	next, err := location(resp)
	if err != nil {
		return Descriptor{}, classify(op, err)
	}
	d := Descriptor{MediaType: mediaType, Digest: hr.sum(), Size: hr.n}
	resp, err = r.do(ctx, op, request{method: http.MethodPut, url: withDigest(next, d.Digest), ok: []int{http.StatusCreated}})
	if err != nil {
		return Descriptor{}, err
	}
	_ = resp.Body.Close()
	return d, nil
}

// FetchBlob opens a blob for reading once the registry has answered 200 with
// the descriptor's size (when it announces one); the caller verifies the digest
// while reading.
func (r *Repo) FetchBlob(ctx context.Context, d Descriptor) (io.ReadCloser, error) {
	op := "fetch blob " + d.Digest.String()
	resp, err := r.do(ctx, op, request{method: http.MethodGet,
		url: r.url("blobs/" + d.Digest.String()), ok: []int{http.StatusOK}})
	if err != nil {
		return nil, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		_ = resp.Body.Close()
		return nil, errorf(ReasonDigestMismatch, op, "registry sends %d bytes, the descriptor says %d", resp.ContentLength, d.Size)
	}
	return resp.Body, nil
}

func (r *Repo) startUpload(ctx context.Context, op string) (string, error) {
	resp, err := r.do(ctx, op, request{method: http.MethodPost, url: r.url("blobs/uploads/"), ok: []int{http.StatusAccepted}})
	if err != nil {
		return "", err
	}
	_ = resp.Body.Close()
	loc, err := location(resp)
	if err != nil {
		return "", classify(op, err)
	}
	return loc, nil
}

// location resolves an upload Location header against the request URL.
func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("registry answered %d without a Location header", resp.StatusCode)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad Location header: %w", err)
	}
	return u.String(), nil
}

func withDigest(loc string, digest v1.Hash) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	q := u.Query()
	q.Set("digest", digest.String())
	u.RawQuery = q.Encode()
	return u.String()
}

func sha256Hash(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// hashingReader hashes and counts what it reads and remembers a read error,
// so an upload can tell a producer failure from a network failure.
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	if err != nil && err != io.EOF { //nolint:errorlint // io.EOF is returned unwrapped by contract
		hr.err = err
	}
	return n, err
}

// streamChunk is how much of a stream is read, hashed and sent at a time. The
// HTTP client copies a body 32 KiB at a time unless the body has WriteTo; in
// 1 MiB pieces the upload makes 32 times fewer syscalls and pipe hand-offs.
const streamChunk = 1 << 20

// WriteTo makes the HTTP client send the body in streamChunk pieces.
func (hr *hashingReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, streamChunk)
	var total int64
	for {
		n, err := io.ReadAtLeast(hr, buf, len(buf))
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return total, hr.err
		case err != nil:
			return total, err
		}
	}
}

func (hr *hashingReader) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hr.h.Sum(nil))}
}

// preferReadError returns the producer's error when the body failed, since the
// HTTP error is then only a consequence.
func preferReadError(hr *hashingReader, err error) error {
	if hr.err != nil {
		return hr.err
	}
	return err
}
