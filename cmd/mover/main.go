// Command mover backs up a workspace directory into an OCI registry and restores
// it (docs/mover-contract.md). It runs as the `/mover` binary of the operator image:
//
//	mover backup  --source DIR --repository REG/PATH/NS/WS --tag TAG --workspace NAME --namespace NS
//	              [--workspace-id ID] [--created RFC3339] [--format dwo|layered] [--previous TAG|DIGEST]
//	              [--dwo-compatible-latest] [--group-bytes N] [--auth-dir DIR] [--ca-file PEM] [--insecure]
//	              [--result-file FILE]
//	mover restore --target DIR --reference REF(:TAG|@DIGEST) [--overwrite]
//	              [--auth-dir DIR] [--ca-file PEM] [--insecure] [--result-file FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	// The image has an empty base: no CA bundle and no time-zone database.
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

const usage = `usage:
  mover backup  --source DIR --repository REG/PATH/NS/WS --tag TAG --workspace NAME --namespace NS
                [--workspace-id ID] [--created RFC3339] [--format dwo|layered] [--previous TAG|DIGEST]
                [--dwo-compatible-latest] [--group-bytes N] [--auth-dir DIR] [--ca-file PEM] [--insecure]
                [--result-file FILE]
  mover restore --target DIR --reference REF(:TAG|@DIGEST) [--overwrite]
                [--auth-dir DIR] [--ca-file PEM] [--insecure] [--result-file FILE]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	reportPeakMemory(os.Stderr)
	os.Exit(code)
}

// reportPeakMemory logs VmHWM last thing, so a Job's log shows the memory the
// mover really needed (to size its limit), and tests can bound it.
func reportPeakMemory(w io.Writer) {
	if kib, err := mover.PeakMemoryKiB("self"); err == nil {
		_, _ = fmt.Fprintf(w, "%s%d kB\n", mover.PeakMemoryLine, kib)
	}
}

// run parses args, runs the command, writes the result and returns the exit code:
// 0 on Succeeded or Skipped, 1 on Failed, 2 on a usage error.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	cmd, ok := parseArgs(args, stderr)
	if !ok {
		return mover.ExitUsage
	}
	res := cmd.execute(ctx, stderr)
	if err := mover.WriteResult(cmd.resultFile, res); err != nil {
		_, _ = fmt.Fprintf(stderr, "write result: %v\n", err)
		return 1
	}
	_, _ = fmt.Fprintf(stderr, "%s %s: %s\n", res.Phase, res.Reason, res.Message)
	return res.ExitCode()
}

// command is one parsed mover invocation; parsing touches neither the file system nor the network.
type command struct {
	name       string // "backup" or "restore"
	registry   registry.Options
	resultFile string
	backup     mover.BackupOptions
	created    string // --created, checked when the backup runs so that its error is a result
	restore    mover.RestoreOptions
}

// parseArgs parses the command line; ok is false after a usage error, which it has printed.
func parseArgs(args []string, stderr io.Writer) (cmd command, ok bool) {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return cmd, false
	}
	cmd.name = args[0]
	fs := flag.NewFlagSet("mover "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, usage) }
	cmd.resultFile = mover.DefaultResultFile()
	fs.StringVar(&cmd.registry.AuthDir, "auth-dir", "", "directory holding a docker config.json")
	fs.StringVar(&cmd.registry.CAFile, "ca-file", "", "PEM file of an extra CA for the registry")
	fs.BoolVar(&cmd.registry.Insecure, "insecure", false, "allow plain HTTP and unverified TLS")
	fs.StringVar(&cmd.resultFile, "result-file", cmd.resultFile,
		"where to write the JSON result (default /dev/termination-log if it exists, else stdout)")
	switch cmd.name {
	case "backup":
		o := &cmd.backup
		fs.StringVar(&o.Source, "source", "", "directory to back up")
		fs.StringVar(&o.Repository, "repository", "", "repository REG/PATH/NS/WS")
		fs.StringVar(&o.Tag, "tag", "", "unique tag of this backup")
		fs.StringVar(&o.Workspace, "workspace", "", "DevWorkspace name")
		fs.StringVar(&o.Namespace, "namespace", "", "DevWorkspace namespace")
		fs.StringVar(&o.WorkspaceID, "workspace-id", "", "DevWorkspace id")
		fs.StringVar(&o.Format, "format", mover.FormatDWO, "artifact format: dwo (one layer) or layered")
		fs.StringVar(&o.Previous, "previous", "",
			"tag or digest of the backup whose layers a layered backup reuses (default latest)")
		fs.BoolVar(&o.DWOCompatibleLatest, "dwo-compatible-latest", false,
			"with --format layered, write latest as one layer too")
		fs.Int64Var(&o.GroupBytes, "group-bytes", 0, "with --format layered, the smallest average group size in bytes")
		fs.StringVar(&cmd.created, "created", "",
			"backup time recorded in the manifest (RFC 3339; default: the time in the tag)")
	case "restore":
		o := &cmd.restore
		fs.StringVar(&o.Target, "target", "", "directory to restore into")
		fs.StringVar(&o.Reference, "reference", "", "artifact REF:TAG or REF@DIGEST")
		fs.BoolVar(&o.Overwrite, "overwrite", false, "replace the target's content")
	default:
		_, _ = fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
		return cmd, false
	}
	if err := fs.Parse(args[1:]); err != nil {
		return cmd, false
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "unexpected arguments %q\n%s", fs.Args(), usage)
		return cmd, false
	}
	return cmd, true
}

// execute runs a parsed command.
func (c command) execute(ctx context.Context, stderr io.Writer) mover.Result {
	if c.name == "restore" {
		o := c.restore
		o.Registry, o.Progress = c.registry, stderr
		return mover.Restore(ctx, o)
	}
	o := c.backup
	if c.created != "" {
		t, err := time.Parse(time.RFC3339, c.created)
		if err != nil {
			// A result, not a usage error: the controller sees the reason.
			return mover.Result{Phase: mover.PhaseFailed, Reason: mover.ReasonInvalidArguments,
				Message: fmt.Sprintf("--created %q is not an RFC 3339 time: %v", c.created, err)}
		}
		o.Created = t
	}
	o.Registry, o.Progress = c.registry, stderr
	return mover.Backup(ctx, o)
}
