package mover

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// layerWindow is how many layers a layerChain fetches at once: each reads
// ahead blobChunks*blobChunkSize bytes (blobreader.go), so a chain holds at most
// layerWindow*2 MiB while the layers' requests overlap.
const layerWindow = 4

// layerChain reads the blobs of several layers one after the other as one
// stream (gzip members concatenate into one gzip stream, tar fragments into
// one tar stream), fetching up to layerWindow of them at once, and verifies
// each blob's size and digest when it ends, before a byte of the next is read.
type layerChain struct {
	ctx     context.Context
	repo    *registry.Repo
	layers  []registry.Descriptor
	fetches []*layerFetch
	cur     int
	err     error // sticky: a fetch or verification failure
}

type layerFetch struct {
	done chan struct{}
	body io.ReadCloser
	br   *blobReader
	err  error
	once sync.Once
}

// newLayerChain starts the chain; first, when not nil, is the first layer's
// blob, already opened by the caller.
func newLayerChain(ctx context.Context, repo *registry.Repo, layers []registry.Descriptor, first io.ReadCloser) *layerChain {
	c := &layerChain{ctx: ctx, repo: repo, layers: layers, fetches: make([]*layerFetch, len(layers))}
	if first != nil && len(layers) > 0 {
		f := &layerFetch{done: make(chan struct{}), body: first}
		f.br = newBlobReader(io.LimitReader(first, layers[0].Size+1))
		close(f.done)
		c.fetches[0] = f
	}
	c.startWindow()
	return c
}

// startWindow starts the fetches of the layers from cur to cur+layerWindow.
func (c *layerChain) startWindow() {
	for i := c.cur; i < min(len(c.layers), c.cur+layerWindow); i++ {
		if c.fetches[i] != nil {
			continue
		}
		f := &layerFetch{done: make(chan struct{})}
		c.fetches[i] = f
		go func(d registry.Descriptor) {
			defer close(f.done)
			f.body, f.err = c.repo.FetchBlob(c.ctx, d)
			if f.err == nil {
				f.br = newBlobReader(io.LimitReader(f.body, d.Size+1))
			}
		}(c.layers[i])
	}
}

func (c *layerChain) Read(p []byte) (int, error) {
	for c.err == nil && c.cur < len(c.layers) {
		f := c.fetches[c.cur]
		<-f.done
		if f.err != nil {
			c.err = f.err
			break
		}
		n, err := f.br.Read(p)
		if n > 0 {
			return n, nil
		}
		if !errors.Is(err, io.EOF) {
			c.err = err
			break
		}
		d := c.layers[c.cur]
		if got := f.br.sum(); got != d.Digest.String() || f.br.n != d.Size {
			c.err = failf(ReasonDigestMismatch, "layer %s: received %d bytes with digest %s, expected %d bytes",
				d.Digest, f.br.n, got, d.Size)
			break
		}
		f.close()
		c.fetches[c.cur] = nil // its read-ahead buffers go with it
		c.cur++
		c.startWindow()
	}
	if c.err != nil {
		return 0, c.err
	}
	return 0, io.EOF
}

// close stops every fetch still open.
func (c *layerChain) close() {
	for _, f := range c.fetches {
		if f == nil {
			continue
		}
		go func() { // a fetch still waiting for its answer closes when it has one
			<-f.done
			f.close()
		}()
	}
}

func (f *layerFetch) close() {
	f.once.Do(func() {
		if f.br != nil {
			f.br.close()
		}
		if f.body != nil {
			_ = f.body.Close()
		}
	})
}
