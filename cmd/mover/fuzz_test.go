package main

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// render writes a parsed command back as arguments, every flag as --name=value.
func render(c command) []string {
	args := []string{c.name,
		"--auth-dir=" + c.registry.AuthDir, "--ca-file=" + c.registry.CAFile,
		"--insecure=" + strconv.FormatBool(c.registry.Insecure), "--result-file=" + c.resultFile}
	if c.name == "restore" {
		o := c.restore
		return append(args, "--target="+o.Target, "--reference="+o.Reference, "--overwrite="+strconv.FormatBool(o.Overwrite))
	}
	o := c.backup
	return append(args, "--source="+o.Source, "--repository="+o.Repository, "--tag="+o.Tag,
		"--workspace="+o.Workspace, "--namespace="+o.Namespace, "--workspace-id="+o.WorkspaceID, "--created="+c.created)
}

// FuzzParseArgs: any command line either parses into a backup or restore command, which
// parses the same again when written back as flags, or is a usage error that says so on
// stderr. Arguments are separated by NUL bytes in the fuzzed input.
func FuzzParseArgs(f *testing.F) {
	for _, seed := range []string{
		"backup\x00--source\x00/src\x00--repository\x00127.0.0.1:5000/b/ns/ws\x00--tag\x00t" +
			"\x00--workspace\x00ws\x00--namespace\x00ns",
		"restore\x00--target=/t\x00--reference=127.0.0.1:5000/b/ns/ws@sha256:00\x00--overwrite\x00--insecure",
		"backup\x00--created\x002026-11-26T02:00:00Z\x00--insecure=false\x00extra",
		"restore\x00--overwrite=maybe", "backup\x00-source", "backup\x00--", "backup\x00--\x00x", "help", "",
		"restore\x00--target", "backup\x00--result-file=-\x00---source=x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		var stderr bytes.Buffer
		cmd, ok := parseArgs(args, &stderr)
		if !ok {
			if stderr.Len() == 0 {
				t.Fatalf("usage error for %q with nothing on stderr", args)
			}
			return
		}
		if cmd.name != "backup" && cmd.name != "restore" {
			t.Fatalf("parsed unknown command %q from %q", cmd.name, args)
		}
		again, ok := parseArgs(render(cmd), &stderr)
		if !ok || !reflect.DeepEqual(again, cmd) {
			t.Fatalf("%q parsed as %+v, written back and parsed as %+v (ok %v): %s", args, cmd, again, ok, stderr.String())
		}
	})
}
