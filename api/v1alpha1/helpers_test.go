package v1alpha1_test

import (
	"io"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func envtestAdmin() envtest.User {
	return envtest.User{Name: "explain-admin", Groups: []string{"system:masters"}}
}

func readAll(r io.Reader) string {
	b, err := io.ReadAll(r)
	if err != nil {
		panic(err)
	}
	return string(b)
}
