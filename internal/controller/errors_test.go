package controller

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestRefusedForGood(t *testing.T) {
	jobs := schema.GroupResource{Group: "batch", Resource: "jobs"}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"admission webhook or quota (Forbidden)", apierrors.NewForbidden(jobs, "backup-x", errors.New("exceeded quota")), true},
		{"ValidatingAdmissionPolicy or invalid override (Invalid)", apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"},
			"backup-x", field.ErrorList{field.Invalid(field.NewPath("spec"), 1, "denied")}), true},
		{"bad request", apierrors.NewBadRequest("nope"), true},
		{"timeout is transient", apierrors.NewTimeoutError("slow", 1), false},
		{"server error is transient", apierrors.NewInternalError(errors.New("etcd")), false},
		{"too many requests is transient", apierrors.NewTooManyRequests("later", 1), false},
		{"a network error is transient", errors.New("connection refused"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := refusedForGood(tc.err); got != tc.want {
				t.Fatalf("refusedForGood(%v) = %v, want %v", tc.err, got, tc.want)
			}
			_, terminal := asTerminal(refusal(tc.err, "Job"))
			if terminal != tc.want {
				t.Fatalf("refusal(%v) terminal = %v, want %v", tc.err, terminal, tc.want)
			}
		})
	}
}
