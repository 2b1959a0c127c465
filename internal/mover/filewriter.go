package mover

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes of the data on its way to the file writer: the ring bounds the memory,
// a chunk bounds one write.
const (
	writeRingSize = 8 << 20
	writeChunk    = 1 << 20
	writeQueue    = 128 // files waiting for the writer: each holds an open descriptor
)

// fileWriter writes the data of the files the extractor created, and then
// gives each its owner, mode and mtime and closes it, in a goroutine of its
// own: the kernel's copy into the page cache is, after gunzip, the largest cost
// of a restore, and it now overlaps with reading the archive and creating the
// next entries (make bench-mover, docs/benchmarks.md). It handles files in
// archive order. Only data goes through it: every name is created, replaced or
// linked by the extractor, in archive order, so a directory's metadata can be
// applied while data of its files is still being written (writing a file's
// data changes the file, not its directory).
type fileWriter struct {
	ops   chan writeOp
	ring  *byteRing
	count *counters
	done  chan struct{}
	err   atomic.Pointer[writeFailure] // the first failure; later data is dropped, files still closed
}

// writeOp is the next chunk of a file's data (an empty file has one op,
// without data). After the last one the file is closed, and finished first
// when finish is set (not when the archive failed to give all its data).
type writeOp struct {
	fd      int
	name    string
	data    []byte // in the ring
	release int    // ring bytes to release once data is written
	last    bool
	finish  *fileFinish
}

// fileFinish is what a file gets once its data is written.
type fileFinish struct {
	chown    bool
	uid, gid int
	mode     uint32
	mtime    time.Time
}

func newFileWriter(count *counters) *fileWriter {
	w := &fileWriter{ops: make(chan writeOp, writeQueue), ring: newByteRing(writeRingSize), count: count, done: make(chan struct{})}
	go w.run()
	return w
}

func (w *fileWriter) run() {
	defer close(w.done)
	for op := range w.ops {
		failed := w.failed() != nil
		if !failed && len(op.data) > 0 {
			if err := writeAll(op.fd, op.data); err != nil {
				w.fail(op.name, err)
				failed = true
			} else {
				w.count.bytes.Add(int64(len(op.data)))
			}
		}
		w.ring.release(op.release)
		if !op.last {
			continue
		}
		if !failed && op.finish != nil {
			if err := op.finish.apply(op.fd); err != nil {
				w.fail(op.name, err)
				failed = true
			}
		}
		if err := unix.Close(op.fd); err != nil && !failed {
			w.fail(op.name, err)
			failed = true
		}
		if !failed && op.finish != nil {
			w.count.files.Add(1)
		}
	}
}

// apply sets owner (as root: before the mode, since chown clears setuid), mode and mtime.
func (f *fileFinish) apply(fd int) error {
	if f.chown {
		if err := unix.Fchown(fd, f.uid, f.gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, f.mode); err != nil {
		return err
	}
	return futimens(fd, f.mtime)
}

// writeFailure is the writer's first failure and the file it happened to.
type writeFailure struct {
	name string
	err  error
}

func (w *fileWriter) fail(name string, err error) {
	w.err.CompareAndSwap(nil, &writeFailure{name: name, err: err})
}

// failed returns the first failure, or nil.
func (w *fileWriter) failed() *writeFailure { return w.err.Load() }

// send queues an op; the data slice must come from w.ring.
func (w *fileWriter) send(op writeOp) { w.ops <- op }

// wait lets the writer finish what is queued and returns its first failure.
func (w *fileWriter) wait() *writeFailure {
	close(w.ops)
	<-w.done
	return w.failed()
}

// byteRing hands out slices of one buffer in order and takes them back in the
// same order (the writer's), so memory stays bounded whatever the file sizes.
type byteRing struct {
	buf []byte

	mu   sync.Mutex
	cond *sync.Cond
	head int // where the next slice starts
	used int // bytes handed out and not yet released
}

func newByteRing(size int) *byteRing {
	r := &byteRing{buf: make([]byte, size)}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// alloc returns n contiguous bytes (n <= len(buf)) once they are free, and how
// many bytes to release for them: the end of the buffer is skipped when they
// do not fit there.
func (r *byteRing) alloc(n int) ([]byte, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.used == 0 {
			r.head = 0 // all released: start over, also for a slice of the whole buffer
		}
		wrap := r.head+n > len(r.buf)
		pad := 0
		if wrap {
			pad = len(r.buf) - r.head // may be 0: the last slice ended the buffer
		}
		if r.used+pad+n <= len(r.buf) {
			r.used += pad + n
			if wrap {
				r.head = 0
			}
			b := r.buf[r.head : r.head+n : r.head+n]
			r.head += n
			return b, pad + n
		}
		r.cond.Wait()
	}
}

func (r *byteRing) release(n int) {
	if n == 0 {
		return
	}
	r.mu.Lock()
	r.used -= n
	r.mu.Unlock()
	r.cond.Signal()
}
