package mover

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// The ring hands out slices in order and never one that overlaps a slice not
// yet released, across the wrap at its end (also when a slice ends exactly
// there): a consumer checks each slice's content before it releases it.
func TestByteRing(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		sizes []int
	}{
		{"fits without wrapping", 16, []int{4, 4, 4}},
		{"ends exactly at the end, then wraps", 16, []int{8, 8, 8, 8, 8}},
		{"skips a tail too small", 16, []int{6, 6, 6, 6, 6}},
		{"empty slices", 8, []int{0, 8, 0, 0, 8, 0}},
		{"the whole ring each time", 8, []int{8, 8, 8}},
		{"mixed", 32, []int{5, 17, 9, 1, 31, 2, 16, 16, 3, 32, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newByteRing(tt.size)
			type held struct {
				b       []byte
				release int
				fill    byte
			}
			queue := make(chan held, len(tt.sizes))
			result := make(chan error, 1)
			go func() {
				var err error
				for h := range queue {
					if err == nil && !bytes.Equal(h.b, bytes.Repeat([]byte{h.fill}, len(h.b))) {
						err = fmt.Errorf("slice %d was overwritten before its release", h.fill)
					}
					r.release(h.release)
				}
				result <- err
			}()
			for i, n := range tt.sizes {
				b, release := r.alloc(n)
				if len(b) != n || cap(b) != n || release < n || release > tt.size {
					t.Fatalf("alloc(%d): len %d, cap %d, release %d", n, len(b), cap(b), release)
				}
				fill := byte(i + 1)
				for j := range b {
					b[j] = fill
				}
				queue <- held{b: b, release: release, fill: fill}
			}
			close(queue)
			if err := <-result; err != nil {
				t.Fatal(err)
			}
			if r.used != 0 {
				t.Fatalf("%d bytes still used after releasing everything", r.used)
			}
		})
	}
}

// The read-ahead gives the blob's bytes in order, hashes and counts all it
// read, and keeps returning the blob's error.
func TestBlobReader(t *testing.T) {
	data := make([]byte, 3*blobChunkSize+5)
	for i := range data {
		data[i] = byte(i * 7)
	}
	failure := errors.New("connection reset")
	tests := []struct {
		name    string
		src     func() io.Reader
		want    []byte // what Read gives and what is hashed
		wantErr error
	}{
		{"empty", func() io.Reader { return bytes.NewReader(nil) }, nil, nil},
		{"one byte", func() io.Reader { return bytes.NewReader(data[:1]) }, data[:1], nil},
		{"one chunk less a byte", func() io.Reader { return bytes.NewReader(data[:blobChunkSize-1]) }, data[:blobChunkSize-1], nil},
		{"one chunk", func() io.Reader { return bytes.NewReader(data[:blobChunkSize]) }, data[:blobChunkSize], nil},
		{"chunks and a tail, in small reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }, data, nil},
		{"fails after a chunk", func() io.Reader {
			return io.MultiReader(bytes.NewReader(data[:blobChunkSize+10]), iotest.ErrReader(failure))
		}, data[:blobChunkSize+10], failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlobReader(tt.src())
			defer b.close()
			var got bytes.Buffer
			_, err := io.Copy(&got, iotest.OneByteReader(io.LimitReader(b, 100))) // small reads first
			if err == nil {
				_, err = io.Copy(&got, b)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if _, again := b.Read(make([]byte, 1)); tt.wantErr != nil && !errors.Is(again, tt.wantErr) {
				t.Fatalf("second read: %v, want the same error", again)
			}
			if !bytes.Equal(got.Bytes(), tt.want) {
				t.Fatalf("read %d bytes, want %d", got.Len(), len(tt.want))
			}
			sum := sha256.Sum256(tt.want)
			if b.sum() != "sha256:"+hex.EncodeToString(sum[:]) || b.n != int64(len(tt.want)) {
				t.Fatalf("hashed %d bytes as %s", b.n, b.sum())
			}
		})
	}
}
