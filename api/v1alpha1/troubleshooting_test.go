package v1alpha1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// TestTroubleshootingCoversEveryReason fails when a condition reason a user can meet has no entry
// (a "### `Reason`" heading) in docs/troubleshooting.md: the API's Reason constants, and the
// mover's and the registry client's, which the controllers pass through into conditions.
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	root := testenv.RepoRoot()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^### `([A-Za-z]+)`$").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	sources := []string{"internal/mover/result.go", "internal/registry/errors.go"}
	apiFiles, err := filepath.Glob(filepath.Join(root, "api", "v1alpha1", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range apiFiles {
		if !strings.HasSuffix(f, "_test.go") {
			rel, _ := filepath.Rel(root, f)
			sources = append(sources, rel)
		}
	}
	reasons := map[string]string{} // value -> where
	for _, src := range sources {
		for name, value := range reasonConstants(t, filepath.Join(root, src)) {
			reasons[value] = src + ": " + name
		}
	}
	if len(reasons) < 40 {
		t.Fatalf("found only %d reasons: is the parser still reading the right files?", len(reasons))
	}
	for value, where := range reasons {
		if !documented[value] {
			t.Errorf("reason %q (%s) has no \"### `%s`\" entry in docs/troubleshooting.md", value, where, value)
		}
	}
	for value := range documented {
		if _, ok := reasons[value]; !ok {
			t.Errorf("docs/troubleshooting.md documents %q, which no Reason constant has", value)
		}
	}
}

// reasonConstants returns the constants named Reason* with a string literal value in a Go file.
func reasonConstants(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue // an alias of another package's reason, found there
				}
				value, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out[name.Name] = value
			}
		}
	}
	return out
}
