// Command image builds a container image from Go packages without Docker: each package becomes a
// static binary (CGO_ENABLED=0, -trimpath, -ldflags=-s), all of them go into one layer on an empty
// base, and the image is pushed to a registry and/or written as a tarball that
// `ctr images import` reads. With no --binary, --file or --dir flags it builds the operator image,
// the same layout as the Dockerfile: /manager (./cmd/main.go) and /mover (./cmd/mover), entrypoint
// /manager, user 65532:65532. --file adds a prebuilt program, --dir a directory tree (the OLM bundle
// and catalog images, hack/olm/bundle/bundle.mk), --label and --cmd set the image config.
//
//	go run ./hack/image --push 127.0.0.1:5001/dwbackup/operator:dev --plain-http
//	go run ./hack/image --binary /pause=./hack/local-cluster/pause --entrypoint /pause \
//	    --user 65535:65535 --tarball pause.tar --tag 127.0.0.1:5001/dwbackup/pause:local
//	go run ./hack/image --dir /manifests=bundle/manifests --dir /metadata=bundle/metadata \
//	    --label operators.operatorframework.io.bundle.mediatype.v1=registry+v1 --push ...
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// binaries maps a path in the image to the Go package built into it.
type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(v string) error {
	dst, pkg, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(dst, "/") || strings.HasSuffix(dst, "/") || pkg == "" {
		return fmt.Errorf("want /PATH/IN/IMAGE=./go/package, got %q", v)
	}
	b[dst] = pkg
	return nil
}

// pairs maps a path in the image to a local path (--file, --dir) or a label to its value.
type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }

func (p pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || val == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	p[k] = val
	return nil
}

// list is a repeatable flag kept in order (--cmd).
type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	bins       binaries
	files      pairs // /PATH/IN/IMAGE -> a local program, added as it is (mode 0755)
	dirs       pairs // /DIR/IN/IMAGE -> a local directory, added recursively
	labels     pairs
	cmd        list
	writable   list // directories in the image any user may write below (opm's cache and its lock)
	entrypoint string
	user       string
	goarch     string
	push       string
	plainHTTP  bool
	tarball    string
	tag        string
	digestFile string
}

func main() {
	o := options{bins: binaries{}, files: pairs{}, dirs: pairs{}, labels: pairs{}}
	flag.Var(o.bins, "binary",
		"/PATH=./package to build into the image (repeatable; default: the operator's /manager and /mover)")
	flag.Var(o.files, "file", "/PATH=local-program to add as it is, mode 0755 (repeatable)")
	flag.Var(o.dirs, "dir", "/DIR=local-directory to add with everything below it (repeatable)")
	flag.Var(o.labels, "label", "KEY=VALUE image label (repeatable)")
	flag.Var(&o.cmd, "cmd", "an argument of the image's command, after the entrypoint (repeatable, in order)")
	flag.Var(&o.writable, "writable", "/DIR of a --dir that any user may write into: modes 0777 and 0666 (repeatable)")
	flag.StringVar(&o.entrypoint, "entrypoint", "", "the image entrypoint (default: /manager, or the only binary)")
	flag.StringVar(&o.user, "user", "65532:65532", "the numeric UID:GID the image runs as")
	flag.StringVar(&o.goarch, "goarch", runtime.GOARCH, "the target architecture (GOOS is always linux)")
	flag.StringVar(&o.push, "push", "", "push the image to this reference, e.g. 127.0.0.1:5001/dwbackup/operator:dev")
	flag.BoolVar(&o.plainHTTP, "plain-http", false,
		"allow plain HTTP for --push; only for a loopback registry (127.0.0.1, ::1, localhost)")
	flag.StringVar(&o.tarball, "tarball", "", "write the image as a docker-archive tarball to this file")
	flag.StringVar(&o.tag, "tag", "", "the reference recorded in --tarball (default: --push)")
	flag.StringVar(&o.digestFile, "digest-file", "", "write the image's manifest digest (sha256:...) to this file")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if len(o.bins) == 0 && len(o.files) == 0 && len(o.dirs) == 0 {
		o.bins = binaries{"/manager": "./cmd/main.go", "/mover": "./cmd/mover"}
		if o.entrypoint == "" {
			o.entrypoint = "/manager"
		}
	}
	if o.entrypoint == "" && len(o.bins) == 1 {
		for dst := range o.bins {
			o.entrypoint = dst
		}
	}
	_, isBin := o.bins[o.entrypoint]
	_, isFile := o.files[o.entrypoint]
	// An image of files only (an OLM bundle) has no entrypoint.
	if !isBin && !isFile && (o.entrypoint != "" || len(o.bins) > 0) {
		return fmt.Errorf("--entrypoint %q is not one of the binaries or files", o.entrypoint)
	}
	if o.push == "" && o.tarball == "" {
		return errors.New("nothing to do: give --push REF and/or --tarball FILE")
	}
	if o.tarball != "" && o.tag == "" {
		o.tag = o.push
	}
	if o.tarball != "" && o.tag == "" {
		return errors.New("--tarball needs --tag REF (or --push REF)")
	}

	start := time.Now()
	dir, err := os.MkdirTemp("", "dwbackup-image-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	files, err := buildAll(ctx, o, dir)
	if err != nil {
		return err
	}
	maps.Copy(files, o.files)
	img, err := assemble(files, o)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: built %s in %s\n", digest, time.Since(start).Round(time.Millisecond))

	if o.tarball != "" {
		if err := writeTarball(img, o.tag, o.tarball); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "image: wrote %s as %s\n", o.tarball, o.tag)
	}
	if o.push != "" {
		if err := push(ctx, img, o.push, o.plainHTTP); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "image: pushed %s@%s\n", o.push, digest)
	}
	if o.digestFile != "" {
		if err := os.WriteFile(o.digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Println(digest.String())
	return nil
}

// buildAll compiles every package into dir and returns image path -> local file.
func buildAll(ctx context.Context, o options, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, dst := range sortedKeys(o.bins) {
		pkg := o.bins[dst]
		if _, err := os.Stat(strings.TrimSuffix(pkg, "/...")); err != nil {
			return nil, fmt.Errorf("%s: package %s does not exist (yet?): %w", dst, pkg, err)
		}
		file := filepath.Join(dir, filepath.Base(dst))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s", "-o", file, pkg)
		// Static binaries: the empty base has no libc, no CA bundle and no tzdata (the programs
		// embed the last two themselves).
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.goarch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		t := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w", pkg, err)
		}
		fmt.Fprintf(os.Stderr, "image: built %s from %s in %s\n", dst, pkg, time.Since(t).Round(time.Millisecond))
		out[dst] = file
	}
	return out, nil
}

// assemble puts the files into one layer on an empty base, like the Dockerfile's FROM scratch.
func assemble(files map[string]string, o options) (v1.Image, error) {
	layerTar, err := tarOf(files, o.dirs, o.writable...)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	// containerd matches a single-manifest image against the node's platform: without OS and
	// architecture in the config the pull fails with "no match for platform".
	cfg.OS = "linux"
	cfg.Architecture = o.goarch
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.Entrypoint = nil
	if o.entrypoint != "" {
		cfg.Config.Entrypoint = []string{o.entrypoint}
	}
	cfg.Config.Cmd = o.cmd
	if len(o.labels) > 0 {
		cfg.Config.Labels = o.labels
	}
	cfg.Config.User = o.user
	cfg.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cfg)
}

// tarOf writes a deterministic tar: sorted entries, root-owned, fixed times; programs mode 0755,
// the files of the directories 0644 below directories 0755, or 0666 and 0777 at or below a writable
// directory (the image may run as any user, as OpenShift does).
func tarOf(files, dirs map[string]string, writable ...string) ([]byte, error) {
	entries := map[string]tarEntry{}
	for dst, src := range files {
		entries[strings.TrimPrefix(dst, "/")] = tarEntry{src: src, mode: 0o755}
	}
	for dst, src := range dirs {
		err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			path := strings.TrimPrefix(filepath.ToSlash(filepath.Join(dst, rel)), "/")
			open := slices.ContainsFunc(writable, func(w string) bool {
				w = strings.Trim(w, "/")
				return path == w || strings.HasPrefix(path, w+"/")
			})
			switch {
			case d.IsDir() && open:
				entries[path] = tarEntry{dir: true, mode: 0o777}
			case d.IsDir():
				entries[path] = tarEntry{dir: true, mode: 0o755}
			case d.Type().IsRegular() && open:
				entries[path] = tarEntry{src: p, mode: 0o666}
			case d.Type().IsRegular():
				entries[path] = tarEntry{src: p, mode: 0o644}
			default:
				return fmt.Errorf("%s: only directories and regular files go into the image", p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, path := range sortedKeys(entries) {
		if err := entries[path].write(tw, path); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type tarEntry struct {
	src  string
	dir  bool
	mode int64
}

func (e tarEntry) write(tw *tar.Writer, path string) error {
	hdr := &tar.Header{Name: path, Mode: e.mode, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if e.dir {
		hdr.Typeflag, hdr.Name = tar.TypeDir, path+"/"
		return tw.WriteHeader(hdr)
	}
	data, err := os.ReadFile(e.src)
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

func writeTarball(img v1.Image, tag, file string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", tag, err)
	}
	tmp := file + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// push sends the image. go-containerregistry silently falls back to plain HTTP for loopback and
// private addresses; this program allows HTTP only when asked and only for a loopback registry.
func push(ctx context.Context, img v1.Image, refStr string, plainHTTP bool) error {
	var opts []name.Option
	if plainHTTP {
		r, err := name.ParseReference(refStr)
		if err != nil {
			return fmt.Errorf("--push %q: %w", refStr, err)
		}
		if host := r.Context().RegistryStr(); !isLoopback(host) {
			return fmt.Errorf("--plain-http is only allowed for a loopback registry, not %q", host)
		}
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(refStr, opts...)
	if err != nil {
		return fmt.Errorf("--push %q: %w", refStr, err)
	}
	transport := remote.DefaultTransport
	if !plainHTTP {
		transport = httpsOnly{next: remote.DefaultTransport}
	}
	return remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(transport))
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// httpsOnly refuses every plain HTTP request.
type httpsOnly struct{ next http.RoundTripper }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, fmt.Errorf("refusing plain HTTP to %s (use --plain-http for a loopback registry)", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
