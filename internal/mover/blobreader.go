package mover

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"sync"
)

// Read-ahead of the layer blob: chunks of blobChunkSize, blobChunks of them.
const (
	blobChunkSize = 256 << 10
	blobChunks    = 8
)

// blobReader reads the layer blob ahead in a goroutine of its own, where it
// also hashes and counts it: the sha256 of the blob then runs beside gunzip,
// which is the longest stage of a restore, instead of on gunzip's goroutine
// before every block it inflates (make bench-mover, docs/benchmarks.md).
type blobReader struct {
	chunks chan blobChunk
	free   chan []byte
	done   chan struct{}
	stop   sync.Once

	buf []byte // the chunk being read, returned to free once read
	cur []byte // its unread part
	err error  // sticky: io.EOF or the blob's read error

	// Written by the read-ahead goroutine; read only after Read has
	// returned an error, which the goroutine sends last.
	h hash.Hash
	n int64
}

type blobChunk struct {
	b   []byte
	err error
}

func newBlobReader(r io.Reader) *blobReader {
	b := &blobReader{chunks: make(chan blobChunk, blobChunks), free: make(chan []byte, blobChunks),
		done: make(chan struct{}), h: sha256.New()}
	for range blobChunks {
		b.free <- make([]byte, blobChunkSize)
	}
	go b.readAhead(r)
	return b
}

func (b *blobReader) readAhead(r io.Reader) {
	for {
		var buf []byte
		select {
		case buf = <-b.free:
		case <-b.done:
			return
		}
		n, err := io.ReadFull(r, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		b.h.Write(buf[:n])
		b.n += int64(n)
		select {
		case b.chunks <- blobChunk{b: buf[:n], err: err}:
		case <-b.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (b *blobReader) Read(p []byte) (int, error) {
	for len(b.cur) == 0 {
		if b.buf != nil {
			b.free <- b.buf[:cap(b.buf)]
			b.buf = nil
		}
		if b.err != nil {
			return 0, b.err
		}
		c := <-b.chunks
		b.buf, b.cur, b.err = c.b, c.b, c.err
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// close stops the read-ahead (a restore that returns before the blob's end);
// a read it is blocked in ends when the blob is closed.
func (b *blobReader) close() { b.stop.Do(func() { close(b.done) }) }

// sum is the digest of what was read; valid once Read has returned an error.
func (b *blobReader) sum() string { return "sha256:" + hex.EncodeToString(b.h.Sum(nil)) }
