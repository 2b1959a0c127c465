package testenv

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Kubernetes version has one source, hack/k8s/go.mod's k8s.io/kubernetes requirement
// (hack/k8s/version.sh). These tests check that every consumer reads it and nothing else
// hard-codes it.

func TestKubernetesRequirement(t *testing.T) {
	cases := []struct {
		name, gomod, want string
	}{
		{"a require line", "module m\n\nrequire k8s.io/kubernetes v1.2.3\n", "1.2.3"},
		{"inside a require block", "module m\n\nrequire (\n\tk8s.io/api v0.2.3\n\tk8s.io/kubernetes v1.4.0 // direct\n)\n", "1.4.0"},
		{"a replace of it is not a requirement", "module m\n\nreplace k8s.io/kubernetes => k8s.io/kubernetes v1.1.1\n" +
			"require k8s.io/kubernetes v1.2.3\n", "1.2.3"},
		{"missing", "module m\n\nrequire k8s.io/api v0.2.3\n", ""},
		{"required twice", "module m\n\nrequire k8s.io/kubernetes v1.2.3\nrequire k8s.io/kubernetes v1.2.4\n", ""},
		{"not a release", "module m\n\nrequire k8s.io/kubernetes v1.2.3-rc.0\n", ""},
		{"a commented-out line", "module m\n\n// require k8s.io/kubernetes v1.2.3\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kubernetesRequirement([]byte(tc.gomod))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("kubernetesRequirement = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("kubernetesRequirement = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// version is K8sVersion, failing the test when it cannot be read.
func version(t *testing.T) string {
	t.Helper()
	v, err := K8sVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestK8sGoModIsConsistent: the staging modules hack/k8s/go.mod replaces are the v0.x.y twins of
// k8s.io/kubernetes v1.x.y, so the binaries are built from one release.
func TestK8sGoModIsConsistent(t *testing.T) {
	v := version(t)
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "hack", "k8s", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	replace := regexp.MustCompile(`(?m)^replace (k8s\.io/\S+) => (k8s\.io/\S+) (\S+)$`)
	matches := replace.FindAllStringSubmatch(string(data), -1)
	if len(matches) < 20 {
		t.Fatalf("found %d k8s.io replaces in hack/k8s/go.mod, want every staging module", len(matches))
	}
	for _, m := range matches {
		if m[1] != m[2] || m[3] != "v0."+strings.TrimPrefix(v, "1.") {
			t.Errorf("hack/k8s/go.mod: replace %s => %s %s, want %s v0.%s (k8s.io/kubernetes v%s)",
				m[1], m[2], m[3], m[1], strings.TrimPrefix(v, "1."), v)
		}
	}
}

// TestK8sVersionConsumers runs each consumer: hack/k8s/version.sh, the Makefile, hack/k8s/build.sh
// and hack/local-cluster/lib.sh see K8sVersion, and refuse a K8S_VERSION that differs from it.
func TestK8sVersionConsumers(t *testing.T) {
	v := version(t)
	root := RepoRoot()
	// The scripts find the root with pwd, which may spell it differently (symbolic links).
	binDir := "/bin/k8s/" + v + "-linux-amd64"
	const other = "1.0.0"
	run := func(t *testing.T, k8sVersion string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		cmd.Env = cleanEnv()
		if k8sVersion != "" {
			cmd.Env = append(cmd.Env, "K8S_VERSION="+k8sVersion)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	refused := func(t *testing.T, out string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(out, "K8S_VERSION="+other) || !strings.Contains(out, "hack/k8s/go.mod pins k8s.io/kubernetes v"+v) {
			t.Fatalf("K8S_VERSION=%s was not refused with a message naming hack/k8s/go.mod (err %v):\n%s", other, err, out)
		}
	}

	t.Run("version.sh", func(t *testing.T) {
		out, err := run(t, "", "hack/k8s/version.sh")
		if err != nil || out != v+"\n" {
			t.Fatalf("hack/k8s/version.sh = %q, %v; want %q", out, err, v)
		}
		out, err = run(t, "", "hack/k8s/version.sh", other)
		refused(t, out, err)
	})
	t.Run("Makefile", func(t *testing.T) {
		out, err := run(t, "", "make", "--no-print-directory", "-n", "envtest-assets")
		if err != nil || !strings.Contains(out, binDir+`" etcd kube-apiserver kubectl`) {
			t.Fatalf("make -n envtest-assets (err %v) does not build into %s:\n%s", err, binDir, out)
		}
		out, err = run(t, "", "make", "--no-print-directory", "-n", "envtest-assets", "K8S_VERSION="+other)
		refused(t, out, err)
		out, err = run(t, other, "make", "--no-print-directory", "-n", "envtest-assets")
		refused(t, out, err)
	})
	t.Run("build.sh", func(t *testing.T) {
		out, err := run(t, other, "hack/k8s/build.sh", t.TempDir(), "kubectl")
		refused(t, out, err)
	})
	t.Run("lib.sh", func(t *testing.T) {
		script := `source hack/local-cluster/lib.sh && echo "$K8S_VERSION $K8S_BIN"`
		out, err := run(t, "", "bash", "-c", script)
		if err != nil || !strings.HasPrefix(out, v+" /") || !strings.HasSuffix(out, binDir+"\n") {
			t.Fatalf("lib.sh: %q, %v; want %q and a path ending in %s", out, err, v, binDir)
		}
		out, err = run(t, other, "bash", "-c", script)
		refused(t, out, err)
	})
}

// TestK8sBinariesAreThatVersion: the envtest binaries (KUBEBUILDER_ASSETS, else K8sBinDir) were
// built by hack/k8s/build.sh at K8sVersion, with its ldflags.
func TestK8sBinariesAreThatVersion(t *testing.T) {
	v := version(t)
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		var err error
		if dir, err = K8sBinDir(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{{"kube-apiserver", "--version"}, {"kubectl", "version", "--client"}} {
		bin := filepath.Join(dir, c[0])
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%v: run `make envtest-assets` or set KUBEBUILDER_ASSETS", err)
		}
		out, err := exec.Command(bin, c[1:]...).CombinedOutput()
		if err != nil || !regexp.MustCompile(`(?m)(^Kubernetes |^Client Version: )v`+regexp.QuoteMeta(v)+`$`).Match(out) {
			t.Fatalf("%s %s (err %v) does not report v%s:\n%s", bin, strings.Join(c[1:], " "), err, v, out)
		}
	}
}

// TestNoOtherK8sVersionSource: no script, makefile or Go file repeats the version (docs may).
func TestNoOtherK8sVersionSource(t *testing.T) {
	v := version(t)
	root := RepoRoot()
	minor := strings.Split(v, ".")[1]
	needles := []string{v, "gitMinor=" + minor}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == ".git" || rel == "bin" || rel == "dist" {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, ".sh") && !strings.HasSuffix(name, ".mk") &&
			name != "Makefile" && name != "Dockerfile" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				t.Errorf("%s contains %q: read the version from hack/k8s/go.mod (hack/k8s/version.sh, testenv.K8sVersion)", rel, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cleanEnv is the environment without the variables that move the binaries (K8S_VERSION,
// K8S_BIN, LOCALBIN: a parent `make test LOCALBIN=...` exports them) or a parent make's flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "K8S_VERSION", "K8S_BIN", "LOCALBIN", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
		default:
			env = append(env, kv)
		}
	}
	return env
}
