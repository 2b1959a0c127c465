// Package gentree writes the deterministic workspace-like tree of docs/benchmarks.md that
// the mover benchmark backs up: at scale 1, about 63k files and 1 GiB made of
// source-like text, a 40k-file node_modules, a .git with packs and loose
// objects, and 20 large binaries of which half are incompressible.
//
// Every byte, mode and mtime derives from the path and fixed seeds, so two
// runs give identical trees (and the mover identical artifacts).
package gentree

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MTime is the modification time of every generated entry.
var MTime = time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)

// kind decides how a file's content is made.
type kind int

const (
	kindSource       kind = iota // code-like text
	kindRandom                   // incompressible: git packs, loose objects, media
	kindCompressible             // binaries with structure (about 10:1 at gzip -1)
)

// file is one file to write.
type file struct {
	path string
	kind kind
	size int
	mode fs.FileMode
}

// Stats describe a generated tree.
type Stats struct {
	Files int
	Bytes int64
}

// plan lists the files of the tree at a scale (1 is about 1 GiB and 63k
// files; 0.1 is about 100 MiB). It is deterministic.
func plan(scale float64) []file {
	rnd := rand.New(rand.NewPCG(20261126, 1))
	n := func(count int) int { return max(1, int(float64(count)*scale)) }
	files := make([]file, 0, n(63000)+100)
	files = append(files, sourceFiles(rnd, n(20000))...)
	files = append(files, nodeModules(rnd, n(40000))...)
	files = append(files, gitDir(rnd, n(3000), scale)...)
	files = append(files, binaries(scale)...)
	return files
}

func sourceFiles(rnd *rand.Rand, count int) []file {
	exts := []string{".go", ".ts", ".py", ".java", ".md", ".yaml"}
	files := make([]file, 0, count+3)
	for i := range count {
		p := fmt.Sprintf("src/module%02d/pkg%03d/file%05d%s", i%23, i%311, i, exts[i%len(exts)])
		files = append(files, file{path: p, kind: kindSource, size: textSize(rnd, 3800), mode: 0o644})
	}
	for _, p := range []string{"README.md", "Makefile", "devfile.yaml"} {
		files = append(files, file{path: p, kind: kindSource, size: 4096, mode: 0o644})
	}
	return files
}

// nodeModules spreads count files over packages of about 27 files each, with
// the shapes npm leaves: manifests, docs, sources and minified bundles.
func nodeModules(rnd *rand.Rand, count int) []file {
	names := []string{"package.json", "README.md", "LICENSE", "index.js", "index.d.ts", "CHANGELOG.md"}
	files := make([]file, 0, count)
	for pkg := 0; len(files) < count; pkg++ {
		base := fmt.Sprintf("node_modules/pkg-%04d", pkg)
		if pkg%5 == 0 {
			base = fmt.Sprintf("node_modules/@scope%02d/pkg-%04d", pkg%17, pkg)
		}
		for j := 0; j < 27 && len(files) < count; j++ {
			var p string
			switch {
			case j < len(names):
				p = base + "/" + names[j]
			case j%4 == 0:
				p = fmt.Sprintf("%s/dist/bundle%02d.min.js", base, j)
			default:
				p = fmt.Sprintf("%s/lib/sub%d/mod%02d.js", base, j%3, j)
			}
			files = append(files, file{path: p, kind: kindSource, size: textSize(rnd, 3300), mode: 0o644})
		}
	}
	return files
}

// gitDir is a .git with two packs, an index and loose objects (zlib data,
// hence incompressible), plus the small text files git keeps.
func gitDir(rnd *rand.Rand, loose int, scale float64) []file {
	mb := func(m float64) int { return max(4096, int(m*scale*(1<<20))) }
	files := make([]file, 0, 23+loose)
	files = append(files, []file{
		{path: ".git/HEAD", kind: kindSource, size: 21, mode: 0o644},
		{path: ".git/config", kind: kindSource, size: 300, mode: 0o644},
		{path: ".git/description", kind: kindSource, size: 73, mode: 0o644},
		{path: ".git/packed-refs", kind: kindSource, size: 6000, mode: 0o644},
		{path: ".git/refs/heads/main", kind: kindSource, size: 41, mode: 0o644},
		{path: ".git/index", kind: kindRandom, size: mb(2), mode: 0o644},
		{path: ".git/objects/pack/pack-1a2b.pack", kind: kindRandom, size: mb(46), mode: 0o444},
		{path: ".git/objects/pack/pack-1a2b.idx", kind: kindRandom, size: mb(1.2), mode: 0o444},
		{path: ".git/objects/pack/pack-3c4d.pack", kind: kindRandom, size: mb(12), mode: 0o444},
		{path: ".git/objects/pack/pack-3c4d.idx", kind: kindRandom, size: mb(0.3), mode: 0o444},
	}...)
	for i := range 13 {
		files = append(files, file{path: fmt.Sprintf(".git/hooks/hook%02d.sample", i), kind: kindSource,
			size: 1800, mode: 0o755})
	}
	for i := range loose {
		files = append(files, file{path: fmt.Sprintf(".git/objects/%02x/%038x", i%256, uint64(i)*0x9e3779b97f4a7c15),
			kind: kindRandom, size: 200 + rnd.IntN(7800), mode: 0o444})
	}
	return files
}

// binaries are 20 files of 25 to 53 MiB at scale 1; the odd ones are random.
func binaries(scale float64) []file {
	files := make([]file, 0, 20)
	for i := range 20 {
		k := kindCompressible
		if i%2 == 1 {
			k = kindRandom
		}
		size := int(float64((25+(i*3)%29)<<20) * scale)
		files = append(files, file{path: fmt.Sprintf("assets/blob%02d.bin", i), kind: k, size: size, mode: 0o644})
	}
	return files
}

// textSize is a long-tailed size around mean: most files small, a few large.
func textSize(rnd *rand.Rand, mean int) int {
	return 40 + int(rnd.ExpFloat64()*float64(mean))
}

// Generate writes the tree into dir, which must not exist or be empty, with
// workers writing files in parallel.
func Generate(ctx context.Context, dir string, scale float64, workers int) (Stats, error) {
	files := plan(scale)
	var st Stats
	for _, f := range files {
		st.Files++
		st.Bytes += int64(f.size)
	}
	if err := makeDirs(dir, files); err != nil {
		return st, err
	}
	jobs := make(chan file)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			buf := make([]byte, 0, 1<<20)
			for f := range jobs {
				if err := writeFile(dir, f, &buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	err := feed(ctx, jobs, files, errs)
	wg.Wait()
	if err != nil {
		return st, err
	}
	return st, setTimes(dir)
}

func feed(ctx context.Context, jobs chan<- file, files []file, errs <-chan error) error {
	defer close(jobs)
	for _, f := range files {
		select {
		case jobs <- f:
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func makeDirs(dir string, files []file) error {
	seen := map[string]bool{}
	for _, f := range files {
		d := filepath.Dir(filepath.Join(dir, f.path))
		if !seen[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			seen[d] = true
		}
	}
	return nil
}

func writeFile(dir string, f file, buf *[]byte) error {
	rnd := rand.New(rand.NewPCG(seedOf(f.path), uint64(f.size)))
	data := content(rnd, f, (*buf)[:0])
	*buf = data
	p := filepath.Join(dir, f.path)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	return os.Chmod(p, f.mode)
}

func seedOf(path string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(path))
	return h.Sum64()
}

// setTimes gives every entry MTime, deepest first so directories keep it.
func setTimes(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(MTime.UnixNano()), unix.NsecToTimespec(MTime.UnixNano())}
	for _, p := range slices.Backward(paths) {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set mtime of %s: %w", p, err)
		}
	}
	return nil
}

// Touch moves the mtime of every 1/fraction-th regular file (in sorted walk
// order) one hour forward, deterministically, and returns how many it touched.
func Touch(dir string, fraction float64) (int, error) {
	every := max(1, int(1/fraction))
	later := unix.NsecToTimespec(MTime.Add(time.Hour).UnixNano())
	ts := []unix.Timespec{later, later}
	i, touched := 0, 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		i++
		if i%every != 0 {
			return nil
		}
		touched++
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0)
	})
	return touched, err
}

// content fills buf with f.size bytes of f's kind.
func content(rnd *rand.Rand, f file, buf []byte) []byte {
	switch f.kind {
	case kindRandom:
		return randomBytes(rnd, buf, f.size)
	case kindCompressible:
		return structuredBytes(rnd, buf, f.size)
	default:
		return sourceText(rnd, buf, f.size)
	}
}

func randomBytes(rnd *rand.Rand, buf []byte, size int) []byte {
	buf = slices.Grow(buf, size)[:size]
	var seed [32]byte
	for i := range 4 {
		v := rnd.Uint64()
		for j := range 8 {
			seed[i*8+j] = byte(v >> (8 * j))
		}
	}
	_, _ = rand.NewChaCha8(seed).Read(buf)
	return buf
}

// structuredBytes looks like an uncompressed binary: records of counters,
// zero padding, repeated tables and a little noise.
func structuredBytes(rnd *rand.Rand, buf []byte, size int) []byte {
	buf = slices.Grow(buf, size)[:0]
	var rec [64]byte
	for i := 0; len(buf) < size; i++ {
		for j := range 8 {
			rec[j] = byte(i >> (8 * (j % 4)))
		}
		for j := 8; j < 40; j++ {
			rec[j] = 0
		}
		for j := 40; j < 64; j++ {
			rec[j] = byte(j*7 + i%5)
		}
		if i%8 == 0 {
			rec[20] = byte(rnd.Uint32())
			rec[21] = byte(rnd.Uint32())
		}
		buf = append(buf, rec[:min(len(rec), size-len(buf))]...)
	}
	return buf
}

var words = bytes.Fields([]byte(`func return if else for range const var type struct interface import package
	ctx err nil true false string int int64 byte error context value result options config client server
	request response handler reader writer buffer index count total name path file dir entry items list map
	this self def class public private static void new await async function export default let require module
	props state render component useEffect useState console log JSON parse stringify Promise resolve reject
	assert expect test describe it before after mock spy data payload header body status code message`))

var punct = [][]byte{[]byte(" = "), []byte("("), []byte(", "), []byte(")"), []byte("."), []byte(" := "),
	[]byte(" { "), []byte(" }"), []byte("; "), []byte(": "), []byte(" + "), []byte("[]"), []byte(" == ")}

// sourceText is lines of indented tokens: compresses like code (about 3:1).
func sourceText(rnd *rand.Rand, buf []byte, size int) []byte {
	buf = slices.Grow(buf, size+128)[:0]
	for len(buf) < size {
		for range rnd.IntN(4) {
			buf = append(buf, '\t')
		}
		for t := 3 + rnd.IntN(9); t > 0; t-- {
			buf = append(buf, words[rnd.IntN(len(words))]...)
			switch r := rnd.IntN(10); {
			case r < 5:
				buf = append(buf, punct[rnd.IntN(len(punct))]...)
			case r < 6:
				buf = fmt.Appendf(buf, "%d", rnd.IntN(100000))
			default:
				buf = append(buf, ' ')
			}
		}
		buf = append(buf, '\n')
	}
	return buf[:size]
}

// DevDay changes the tree the way a developer's day does, in three
// directories, deterministically for a day number >= 1: it rewrites sources of
// one module (src/moduleNN, NN = day mod 23), adds new loose git objects, and
// rebuilds an output folder (build/, removed and written again). Together the
// three touch about fraction of the tree's files (a third each), every file
// under 1 MiB, with mtimes of that day. It returns how many files it wrote.
func DevDay(dir string, day int, fraction float64) (int, error) {
	var files int
	if err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return err
	}); err != nil {
		return 0, err
	}
	third := max(1, int(float64(files)*fraction/3))
	rnd := rand.New(rand.NewPCG(20261201, uint64(day)))
	when := MTime.Add(time.Duration(day) * 24 * time.Hour)
	var plan []file
	var sources []string
	module := filepath.Join(dir, fmt.Sprintf("src/module%02d", day%23))
	if err := filepath.WalkDir(module, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			sources = append(sources, rel)
		}
		return err
	}); err != nil {
		return 0, err
	}
	for i := 0; i < len(sources) && i < third; i++ {
		plan = append(plan, file{path: sources[i*len(sources)/third], kind: kindSource,
			size: textSize(rnd, 3800), mode: 0o644})
	}
	for i := range third {
		id := uint64(day)<<32 | uint64(i)
		p := fmt.Sprintf(".git/objects/%02x/%038x", (id*0x9e3779b97f4a7c15)>>56, id*0xbf58476d1ce4e5b9)
		plan = append(plan, file{path: p, kind: kindRandom, size: 200 + rnd.IntN(7800), mode: 0o444})
	}
	if err := os.RemoveAll(filepath.Join(dir, "build")); err != nil {
		return 0, err
	}
	for i := range third {
		plan = append(plan, file{path: fmt.Sprintf("build/out/chunk%04d.js", i), kind: kindSource,
			size: min(textSize(rnd, 20000), 1<<20-1), mode: 0o644})
	}
	if err := makeDirs(dir, plan); err != nil {
		return 0, err
	}
	buf := make([]byte, 0, 1<<20)
	ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
	for _, f := range plan {
		rnd := rand.New(rand.NewPCG(seedOf(f.path), uint64(day)))
		buf = content(rnd, f, buf[:0])
		p := filepath.Join(dir, f.path)
		_ = os.Chmod(p, 0o644) // loose objects are read-only; a new one may not exist yet
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return 0, err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return 0, err
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
			return 0, err
		}
	}
	return len(plan), nil
}
