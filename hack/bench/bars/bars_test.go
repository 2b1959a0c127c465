package bars

import (
	"strings"
	"testing"
)

func TestPrint(t *testing.T) {
	var out strings.Builder
	missed := Print(&out, 6, []Bar{{Name: "fast", OK: true, Got: "1 s"}, {Name: "small", OK: false, Got: "2 MiB"}})
	want := "PASS  fast   1 s\nMISS  small  2 MiB\n"
	if missed != 1 || out.String() != want {
		t.Fatalf("missed %d, printed %q; want 1, %q", missed, out.String(), want)
	}
}
