// Command gen writes the operator's OLM bundle and the parts of its file-based catalog that opm does
// not render, and derives the local cluster's variant of both (docs/olm.md). It does what
// `operator-sdk generate bundle` does, which cannot be built here:
//
//	kustomize build config/manifests | go run ./gen bundle --out bundle --version 0.2.0 ...
//	go run ./gen catalog --dir catalog/devworkspace-backup-operator --channel stable
//	go run ./gen local --catalog catalog --out DIR --image FROM=TO ...
//
// Everything it writes is a function of its input and flags (no timestamps, sorted output), so
// `make verify` can regenerate the committed bundle and catalog and compare.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gen bundle|catalog|local [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "bundle":
		err = runBundle(os.Args[2:])
	case "catalog":
		err = runCatalog(os.Args[2:])
	case "local":
		err = runLocal(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want bundle, catalog or local", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen "+os.Args[1]+":", err)
		os.Exit(1)
	}
}
