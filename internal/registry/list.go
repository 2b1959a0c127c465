package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// listPageSize is how many names one catalog or tags-list request asks for (a variable so tests
// can make pages small).
var listPageSize = 100

// maxListPages bounds the requests of one listing, whatever Link headers a registry sends.
const maxListPages = 10000

// maxListPageSize bounds what is read into memory for one page.
const maxListPageSize = 4 << 20

// catalogScope is the token scope distribution's token auth grants catalog listing under.
const catalogScope = "registry:catalog:*"

// listPage is one answer of GET /v2/_catalog or GET /v2/<name>/tags/list.
type listPage struct {
	Repositories []string `json:"repositories"`
	Tags         []string `json:"tags"`
}

// Catalog lists the repositories of a registry (host[:port]) whose names sort after `after`
// (the distribution API's `last`; "" lists from the start), one page of listPageSize at a time,
// following the registry's Link headers. fn receives each page. A registry that does not list
// its catalog fails with ReasonUnauthorized, ReasonNotFound or ReasonUnsupported.
func (c *Client) Catalog(ctx context.Context, host, after string, fn func(repositories []string) error) error {
	reg, err := name.NewRegistry(host, c.nameOptions()...)
	if err != nil {
		return newError(ReasonInvalidReference, "parse registry", err)
	}
	r := &Repo{backoff: c.backoff}
	err = r.retry(ctx, "connect to "+host, func() error {
		tr, err := transport.NewWithContext(ctx, reg, c.creds.For(reg.RegistryStr()), c.base, []string{catalogScope})
		if err != nil {
			return err
		}
		r.client = &http.Client{Transport: tr}
		return nil
	})
	if err != nil {
		return err
	}
	first := fmt.Sprintf("%s://%s/v2/_catalog?n=%d", reg.Scheme(), reg.RegistryStr(), listPageSize)
	if after != "" {
		first += "&last=" + url.QueryEscape(after)
	}
	return r.pages(ctx, "list repositories of "+host, first, func(p listPage) []string { return p.Repositories }, fn)
}

// ListTags lists the repository's tags, one page of listPageSize at a time, following the
// registry's Link headers. fn receives each page.
func (r *Repo) ListTags(ctx context.Context, fn func(tags []string) error) error {
	first := r.url(fmt.Sprintf("tags/list?n=%d", listPageSize))
	return r.pages(ctx, "list tags of "+r.Name(), first, func(p listPage) []string { return p.Tags }, fn)
}

// pages GETs first and every page after it, at most maxListPages: the page the registry's Link
// header names, else, when a page came back full without one (registries that honour n but send
// no Link), the same request with last set to the page's last name, until a page brings nothing new.
func (r *Repo) pages(ctx context.Context, op, first string, names func(listPage) []string, fn func([]string) error) error {
	seen := map[string]bool{}
	last := ""
	for next := first; next != ""; {
		if seen[next] || len(seen) >= maxListPages {
			return errorf(ReasonRegistryError, op, "the registry's list does not end after %d pages", len(seen))
		}
		seen[next] = true
		resp, err := r.do(ctx, op, request{method: http.MethodGet, url: next,
			headers: map[string]string{headerAccept: "application/json"}, ok: []int{http.StatusOK}})
		if err != nil {
			return err
		}
		var page listPage
		err = json.NewDecoder(io.LimitReader(resp.Body, maxListPageSize)).Decode(&page)
		_ = resp.Body.Close()
		if err != nil {
			return errorf(ReasonRegistryError, op, "the registry answered with a list that is not JSON: %v", err)
		}
		got := names(page)
		if last != "" && !slices.ContainsFunc(got, func(n string) bool { return n > last }) {
			return nil // a registry that ignores last sent the same page again
		}
		if err := fn(got); err != nil {
			return err
		}
		if next, err = nextPage(resp.Request.URL, resp.Header.Get("Link")); err != nil {
			return newError(ReasonRegistryError, op, err)
		}
		if next == "" && len(got) >= listPageSize {
			last = slices.Max(got)
			next = withQuery(resp.Request.URL, "last", last)
		}
	}
	return nil
}

// withQuery is u with one query parameter set.
func withQuery(u *url.URL, key, value string) string {
	c := *u
	q := c.Query()
	q.Set(key, value)
	c.RawQuery = q.Encode()
	return c.String()
}

// nextPage is the URL of a Link header's rel="next" (RFC 8288, as the distribution API sends
// it: `</v2/_catalog?last=x&n=100>; rel="next"`), resolved against the request URL; "" when
// there is none.
func nextPage(base *url.URL, link string) (string, error) {
	for part := range strings.SplitSeq(link, ",") {
		target, params, ok := strings.Cut(part, ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.TrimSpace(target)
		if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			return "", fmt.Errorf("malformed Link header %q", link)
		}
		u, err := base.Parse(strings.Trim(target, "<>"))
		if err != nil {
			return "", fmt.Errorf("malformed Link header %q: %w", link, err)
		}
		if u.Host != base.Host || u.Scheme != base.Scheme {
			return "", fmt.Errorf("the Link header %q leads to another registry", link)
		}
		return u.String(), nil
	}
	return "", nil
}
