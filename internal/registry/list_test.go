package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

func TestNextPage(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:5000/v2/_catalog?n=2")
	for _, tc := range []struct {
		link, want string
		fails      bool
	}{
		{link: "", want: ""},
		{link: `</v2/_catalog?last=b&n=2>; rel="next"`, want: "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"},
		{link: `<http://127.0.0.1:5000/v2/ns/ws/tags/list?last=t&n=2>; rel=next`, want: ""}, // unquoted rel is not "next"
		{link: `</v2/a>; rel="prev", </v2/b>; rel="next"`, want: "http://127.0.0.1:5000/v2/b"},
		{link: `/v2/_catalog?last=b; rel="next"`, fails: true},
		{link: `<https://elsewhere.example/v2/_catalog>; rel="next"`, fails: true},
	} {
		got, err := nextPage(base, tc.link)
		if (err != nil) != tc.fails || got != tc.want {
			t.Errorf("nextPage(%q) = %q, %v; want %q, fails %v", tc.link, got, err, tc.want, tc.fails)
		}
	}
}

// A real distribution registry pages its catalog and tag lists with Link headers: every name
// comes back once, in small pages, and `after` skips what sorts before it.
func TestDistributionListsInPages(t *testing.T) {
	defer func(n int) { listPageSize = n }(listPageSize)
	listPageSize = 2
	d := registrytest.StartDistribution(t)
	ctx := context.Background()
	var tags []string
	for _, repo := range []string{"aaa/ns/ws", "backups/ns1/ws", "backups/ns2/ws"} {
		r := openRepo(t, Options{Insecure: true, Retry: fast}, d.Host+"/"+repo)
		m := pushManifest(t, r, "t0")
		for i := 1; i < 5; i++ {
			if err := r.TagManifest(ctx, fmt.Sprintf("t%d", i), m.Digest); err != nil {
				t.Fatal(err)
			}
		}
		if repo == "backups/ns1/ws" {
			// distribution 2.x sends every tag in one answer, unsorted.
			if err := r.ListTags(ctx, func(page []string) error {
				tags = append(tags, page...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if slices.Sort(tags); !slices.Equal(tags, []string{"t0", "t1", "t2", "t3", "t4"}) {
		t.Errorf("tags %v, want t0..t4", tags)
	}
	c, err := New(Options{Insecure: true, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	var repos []string
	if err := c.Catalog(ctx, d.Host, "backups/", func(page []string) error {
		repos = append(repos, page...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"backups/ns1/ws", "backups/ns2/ws"}; !slices.Equal(repos, want) {
		t.Errorf("catalog after backups/: %v, want %v", repos, want)
	}
}

// A registry that honours n and last but sends no Link header (go-containerregistry's in-process
// registry) is read in full pages until a page comes back short.
func TestListTagsWithoutLinkHeaders(t *testing.T) {
	defer func(n int) { listPageSize = n }(listPageSize)
	listPageSize = 2
	reg := registrytest.NewInProcess(t, nil)
	r := openRepo(t, Options{Insecure: true, Retry: fast}, reg.Host+"/backups/ns/ws")
	m := pushManifest(t, r, "t0")
	for i := 1; i < 5; i++ {
		if err := r.TagManifest(context.Background(), fmt.Sprintf("t%d", i), m.Digest); err != nil {
			t.Fatal(err)
		}
	}
	var tags []string
	if err := r.ListTags(context.Background(), func(page []string) error {
		tags = append(tags, page...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, []string{"t0", "t1", "t2", "t3", "t4"}) {
		t.Errorf("tags %v, want t0..t4", tags)
	}
	if n := reg.Count(http.MethodGet, "/tags/list"); n != 3 {
		t.Errorf("%d tag list requests for 5 tags in pages of 2, want 3", n)
	}
}

// A registry that refuses catalog listing (many hosted ones do) fails with a reason the
// operator can report.
func TestCatalogRefused(t *testing.T) {
	for status, want := range map[int]Reason{
		http.StatusUnauthorized:     ReasonUnauthorized,
		http.StatusNotFound:         ReasonNotFound,
		http.StatusMethodNotAllowed: ReasonUnsupported,
	} {
		reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/_catalog") {
					w.WriteHeader(status)
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		c, err := New(Options{Insecure: true, Retry: fast})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Catalog(context.Background(), reg.Host, "", func([]string) error { return nil })
		if ReasonOf(err) != want {
			t.Errorf("HTTP %d: reason %q (%v), want %s", status, ReasonOf(err), err, want)
		}
	}
}
