package mover

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io/fs"
	"strconv"
)

// fingerprintVersion changes whenever the archive format or the fingerprint
// records change, so an old fingerprint never matches a new tree.
const fingerprintVersion = "v1"

// layerFingerprintVersion prefixes the fingerprint of a layered backup's group
// (layered.go); it changes whenever a fragment's bytes would.
const layerFingerprintVersion = "layer-v1"

// fingerprint hashes what lstat says about each entry, in walk order: a tree
// whose paths, types, modes, sizes, mtimes, owners and link targets are equal
// gives an equal fingerprint, and computing it reads no file content.
type fingerprint struct {
	version string
	h       hash.Hash
	buf     []byte
}

func newFingerprint() *fingerprint {
	return &fingerprint{version: fingerprintVersion, h: sha256.New(), buf: make([]byte, 0, 512)}
}

func newLayerFingerprint() *fingerprint {
	f := newFingerprint()
	f.version = layerFingerprintVersion
	return f
}

// addLayerEntry adds an entry of a group and the name a hard link of it points
// at: which name of an inode is archived first depends on the whole walk, and
// a reused fragment must hold the same link as a fresh one would.
func (f *fingerprint) addLayerEntry(e entry, hdr *tar.Header) {
	f.add(e)
	if hdr != nil && hdr.Typeflag == tar.TypeLink {
		f.h.Write([]byte("=> " + hdr.Linkname + "\n"))
	}
}

func (f *fingerprint) add(e entry) {
	b := append(f.buf[:0], e.path...)
	b = append(b, 0, entryKind(e.info.Mode()))
	b = strconv.AppendUint(b, uint64(e.info.Mode()), 8)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.info.Size(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.info.ModTime().UnixNano(), 10)
	if st := e.stat(); st != nil {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(st.Uid), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(st.Gid), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, st.Nlink, 10)
	}
	b = append(b, 0)
	b = append(b, e.link...)
	b = append(b, '\n')
	f.h.Write(b)
	f.buf = b
}

func (f *fingerprint) sum() string {
	return f.version + ":sha256:" + hex.EncodeToString(f.h.Sum(nil))
}

// entryKind is one letter per entry type.
func entryKind(m fs.FileMode) byte {
	switch {
	case m.IsRegular():
		return 'f'
	case m.IsDir():
		return 'd'
	case m&fs.ModeSymlink != 0:
		return 'l'
	default:
		return 'o' // socket, FIFO, device: skipped
	}
}
