package registry

import (
	"strings"
	"testing"
)

// FuzzParseReference: a reference or repository either fails InvalidReference or parses into a
// name that parses again to itself, and a Repo opened on it writes references that parse back
// to the same repository, tag or digest.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5000/b/ns/ws:nightly-20261126T020000Z",
		"registry.example.com/backups/ns/ws@sha256:" + strings.Repeat("a", 64), "reg/b/ns/ws:t@sha256:" + strings.Repeat("0", 64),
		"docker.io/library/x", "localhost/x:", "REG:99999/X", "reg//x:t", "x", ""} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, insecure bool) {
		c, err := New(Options{Insecure: insecure})
		if err != nil {
			t.Fatal(err)
		}
		if repo, err := c.ParseRepository(s); err != nil {
			if ReasonOf(err) != ReasonInvalidReference {
				t.Fatalf("ParseRepository(%q): reason %q: %v", s, ReasonOf(err), err)
			}
		} else if again, err := c.ParseRepository(repo.Name()); err != nil || again != repo {
			t.Fatalf("repository %q parsed as %q, which parses as %q (%v)", s, repo.Name(), again.Name(), err)
		}
		ref, err := c.ParseReference(s)
		if err != nil {
			if ReasonOf(err) != ReasonInvalidReference {
				t.Fatalf("ParseReference(%q): reason %q: %v", s, ReasonOf(err), err)
			}
			return
		}
		again, err := c.ParseReference(ref.Name())
		if err != nil || again.Name() != ref.Name() || again.Context() != ref.Context() {
			t.Fatalf("reference %q parsed as %q, which parses as %v (%v)", s, ref.Name(), again, err)
		}
		r := &Repo{repo: ref.Context()}
		back, err := c.ParseReference(r.Reference(ref.Identifier()))
		if err != nil || back.Name() != ref.Name() {
			t.Fatalf("Repo.Reference(%q) of %q is %q (%v)", ref.Identifier(), ref.Context().Name(), r.Reference(ref.Identifier()), err)
		}
	})
}
