package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"

	"path/filepath"
	"slices"
	"strconv"

	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/bars"
	"github.com/dwbackup/devworkspace-backup-operator/hack/bench/gentree"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover/movertest"
	regclient "github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// The history rows (docs/benchmarks.md, "Layered backups"): seven backups of
// the tree with a developer's day of changes between each (gentree.DevDay: 1%
// of the files, in three directories), into one repository per format.
const historyDays = 7

type series struct {
	name    string
	args    []string
	repo    string
	backups []row
	tags    []string
	storage int64 // sum of the unique blobs the seven tags refer to
	layers  int   // of the newest tag
	restore row   // of the newest tag
	exact   int   // tags that restored byte-exact
	checked int   // tags restored
	oras    string
	layered bool
}

func (b *bench) history(ctx context.Context) (*historyResult, error) {
	all := []*series{
		{name: "single layer (dwo)", repo: "bench/history-dwo/ws"},
		{name: "layered", args: []string{"--format", mover.FormatLayered}, repo: "bench/history-layered/ws", layered: true},
		{name: "layered + DWO-compatible latest", args: []string{"--format", mover.FormatLayered, "--dwo-compatible-latest"},
			repo: "bench/history-compat/ws", layered: true},
	}
	if b.cfg.groupBytes > 0 {
		for _, s := range all[1:] {
			s.args = append(s.args, "--group-bytes", strconv.FormatInt(b.cfg.groupBytes, 10))
		}
	}
	var states []string
	for day := range historyDays {
		if day > 0 {
			n, err := gentree.DevDay(b.tree, day, 0.01)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(os.Stderr, "day %d: %d files changed or added\n", day, n)
		}
		state, err := treeDigest(b.tree)
		if err != nil {
			return nil, err
		}
		states = append(states, state)
		for _, s := range all {
			tag := fmt.Sprintf("day%d-20261201T%02d0000Z", day, day)
			r, err := b.historyBackup(ctx, s, tag)
			if err != nil {
				return nil, fmt.Errorf("%s, day %d: %w", s.name, day, err)
			}
			fmt.Fprintf(os.Stderr, "%-34s day %d %6.2f s %6.2f CPU s %8.1f MB uploaded\n", s.name, day, r.seconds, r.cpu,
				float64(r.uploaded)/1e6)
			s.backups, s.tags = append(s.backups, r), append(s.tags, tag)
		}
	}
	// Timed first: the checks below remove large trees (see timeRestores).
	dwoRestore, err := b.timeRestores(ctx, all)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if err := b.measureSeries(ctx, s, states); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return &historyResult{series: all, dwoRestore: dwoRestore}, nil
}

// historyResult is the seven-backup series of each format and DWO's restore of
// the single-layer newest tag, the baseline of the restore bar.
type historyResult struct {
	series     []*series
	dwoRestore row
}

func (b *bench) historyBackup(ctx context.Context, s *series, tag string) (row, error) {
	before := b.reg.Sent()
	var m movertest.Measured
	secs, err := elapsed(func() error {
		var err error
		m, err = movertest.Run(ctx, b.cfg.mover, append([]string{"backup", "--source", b.tree,
			"--repository", b.reg.Host + "/" + s.repo, "--tag", tag, "--workspace", "ws", "--namespace", "ns",
			insecureFlag}, s.args...), os.Stderr)
		return err
	})
	if err != nil {
		return row{}, err
	}
	if err := checkResult(m, false); err != nil {
		return row{}, err
	}
	return row{seconds: secs, cpu: m.CPUSeconds, rssKiB: m.PeakRSSKiB, uploaded: b.reg.Sent() - before}, nil
}

// measureSeries sums the storage of the seven tags and restores every tag of a
// layered series (the newest only of the single-layer one), each checked against the tree of its day.
func (b *bench) measureSeries(ctx context.Context, s *series, states []string) error {
	c, err := regclient.New(regclient.Options{Insecure: true})
	if err != nil {
		return err
	}
	name, err := c.ParseRepository(b.reg.Host + "/" + s.repo)
	if err != nil {
		return err
	}
	repo, err := c.Open(ctx, name, regclient.Pull)
	if err != nil {
		return err
	}
	blobs := map[string]int64{}
	for i, tag := range s.tags {
		m, err := repo.GetManifest(ctx, tag)
		if err != nil {
			return err
		}
		var parsed struct {
			Config struct {
				Digest string `json:"digest"`
				Size   int64  `json:"size"`
			} `json:"config"`
			Layers []struct {
				Digest string `json:"digest"`
				Size   int64  `json:"size"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(m.Bytes, &parsed); err != nil {
			return err
		}
		blobs[parsed.Config.Digest] = parsed.Config.Size
		blobs[m.Digest.String()] = m.Size
		for _, l := range parsed.Layers {
			blobs[l.Digest] = l.Size
		}
		if i == len(s.tags)-1 {
			s.layers = len(parsed.Layers)
		}
	}
	for _, n := range blobs {
		s.storage += n
	}
	for i, tag := range slices.Backward(s.tags) {
		if i < len(s.tags)-1 && !s.layered {
			break // the single-layer format is P1's, restored by the rows above
		}
		ok, err := b.restoreAndCheck(ctx, b.reg.Host+"/"+s.repo+":"+tag, states[i])
		if err != nil {
			return err
		}
		s.checked++
		if ok {
			s.exact++
		}
	}
	if slices.Contains(s.args, "--dwo-compatible-latest") {
		s.oras, err = b.orasRestore(ctx, b.reg.Host+"/"+s.repo+":latest", states[len(states)-1])
	}
	return err
}

// restoreRounds is how many times timeRestores runs each restore; it keeps the median.
const restoreRounds = 3

// timeRestores times the restore of every series' newest tag and DWO's restore
// (oras pull + tar -xzf + cp -r) of the single-layer one, taking turns for
// restoreRounds rounds so that a busy moment of the machine falls on all of
// them alike. Each run gets a new directory after a sync and nothing is removed
// before the end (restoreDir: ext4 slows every create after a large removal,
// which once made the later rows of this table look 4-10x slower).
func (b *bench) timeRestores(ctx context.Context, all []*series) (row, error) {
	newest := func(s *series) string { return b.reg.Host + "/" + s.repo + ":" + s.tags[len(s.tags)-1] }
	methods := make([]restoreMethod, 0, 1+len(all))
	methods = append(methods, b.dwoRestore(newest(all[0])))
	for _, s := range all {
		methods = append(methods, b.moverRestore(newest(s)))
	}
	files, size, err := countFiles(b.tree) // the newest day's tree
	if err != nil {
		return row{}, err
	}
	runs := make([][]row, len(methods))
	for range restoreRounds {
		for i, method := range methods {
			dir, err := b.restoreDir()
			if err != nil {
				return row{}, err
			}
			secs, st, restored, err := method(&stepper{ctx: ctx}, dir)
			if err == nil {
				err = checkFiles(restored, files, size)
			}
			if err != nil {
				return row{}, err
			}
			runs[i] = append(runs[i], row{seconds: secs, cpu: st.cpu, rssKiB: st.rssKiB})
		}
	}
	for i, s := range all {
		s.restore = medianRow(runs[i+1])
	}
	return medianRow(runs[0]), nil
}

// medianRow is the run of median wall time.
func medianRow(runs []row) row {
	slices.SortFunc(runs, func(a, b row) int { return cmp.Compare(a.seconds, b.seconds) })
	return runs[len(runs)/2]
}

// restoreAndCheck restores ref (untimed) and compares the tree with want.
func (b *bench) restoreAndCheck(ctx context.Context, ref, want string) (bool, error) {
	dir, err := os.MkdirTemp(b.work, "history-restore-")
	if err != nil {
		return false, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	target := filepath.Join(dir, "projects")
	m, err := movertest.Run(ctx, b.cfg.mover, []string{"restore", "--target", target, "--reference", ref, insecureFlag},
		os.Stderr)
	if err != nil {
		return false, err
	}
	if err := checkResult(m, false); err != nil {
		return false, err
	}
	got, err := treeDigest(target)
	return got == want, err
}

// orasRestore is DWO's restore of a DWO-compatible latest: oras pull, tar -xzf.
func (b *bench) orasRestore(ctx context.Context, ref, want string) (string, error) {
	dir, err := os.MkdirTemp(b.work, "history-oras-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", err
	}
	pull := exec.CommandContext(ctx, b.cfg.oras, "pull", "--plain-http", "--no-tty", ref, "--output", dir)
	if _, err := runCmd(pull); err != nil {
		return "", err
	}
	if _, err := runCmd(exec.CommandContext(ctx, "tar", "-xzf", filepath.Join(dir, dwoArchive), "-C", out)); err != nil {
		return "", err
	}
	got, err := treeDigest(out)
	if err != nil {
		return "", err
	}
	if got != want {
		return "differs", nil
	}
	return "byte-exact", nil
}

// treeDigest hashes every entry below dir in walk order: path, type, mode, size,
// mtime in seconds, symlink target and content.
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		_, _ = fmt.Fprintf(h, "%s\x00%v\x00%d\x00%d\x00", rel, info.Mode(), info.Size(), info.ModTime().Unix())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			_ = f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func printHistory(w io.Writer, h *historyResult) {
	all := h.series
	_, _ = fmt.Fprintf(w, "%d backups, a developer's day of changes between each "+
		"(1%% of the files: sources, git objects, build output)\n\n", historyDays)
	_, _ = fmt.Fprintf(w, "| %-34s | %11s | %9s | %9s | %9s | %12s | %6s | %9s | %9s | %6s |\n", "format", "storage",
		"x one", "first s", "next s", "next CPU s", "layers", "uploaded", "restore s", "vs DWO")
	_, _ = fmt.Fprintf(w, "|%s|%s:|%s:|%s:|%s:|%s:|%s:|%s:|%s:|%s:|\n", dashes(36), dashes(12), dashes(10), dashes(10),
		dashes(10), dashes(13), dashes(7), dashes(10), dashes(10), dashes(7))
	one := float64(all[0].backups[0].uploaded)
	for _, s := range all {
		next := s.backups[1:]
		var secs, cpu, up float64
		for _, r := range next {
			secs, cpu, up = secs+r.seconds, cpu+r.cpu, up+float64(r.uploaded)
		}
		n := float64(len(next))
		_, _ = fmt.Fprintf(w, "| %-34s | %8.1f MB | %8.2fx | %9.2f | %9.2f | %12.2f | %6d | %6.1f MB | %9.2f | %5.1fx |\n",
			s.name, float64(s.storage)/1e6, float64(s.storage)/one, s.backups[0].seconds, secs/n, cpu/n, s.layers,
			up/n/1e6, s.restore.seconds, h.dwoRestore.seconds/s.restore.seconds)
	}
	_, _ = fmt.Fprintf(w, "\n(storage: unique blobs of the seven tags; x one: vs the single-layer first upload; "+
		"next: average of backups 2-7;\n"+
		" restore: the newest tag, median of %d rounds taking turns with DWO's restore of the single-layer one, %.2f s)\n",
		restoreRounds, h.dwoRestore.seconds)
	_, _ = fmt.Fprintln(w)
}

// checkHistoryBars prints the bars of the layered format.
func checkHistoryBars(w io.Writer, h *historyResult) int {
	all := h.series
	dwo, layered, compat := all[0], all[1], all[2]
	one := dwo.backups[0].uploaded
	maxCPU := func(s *series) float64 {
		m := 0.0
		for _, r := range s.backups[1:] {
			m = max(m, r.cpu)
		}
		return m
	}
	first := dwo.backups[0].cpu
	list := make([]bars.Bar, 0, 5+len(all))
	list = append(list, []bars.Bar{
		{Name: "7 layered backups <= 1.5x one backup's storage", OK: float64(layered.storage) <= 1.5*float64(one),
			Got: fmt.Sprintf("%.2fx (%.1f MB; single layer %.2fx)", float64(layered.storage)/float64(one),
				float64(layered.storage)/1e6, float64(dwo.storage)/float64(one))},
		{Name: "layered backup CPU <= 25% of a first backup", OK: maxCPU(layered) <= 0.25*first,
			Got: fmt.Sprintf("%.1f%% at most (%.2f s vs %.2f s)", 100*maxCPU(layered)/first, maxCPU(layered), first)},
		{Name: "with DWO-compatible latest <= 75%", OK: maxCPU(compat) <= 0.75*first,
			Got: fmt.Sprintf("%.1f%% at most (%.2f s vs %.2f s)", 100*maxCPU(compat)/first, maxCPU(compat), first)},
		{Name: "layered manifests within the layer limit",
			OK:  layered.layers <= mover.MaxLayers && compat.layers <= mover.MaxLayers,
			Got: fmt.Sprintf("%d layers (limit %d)", layered.layers, mover.MaxLayers)},
	}...)
	for _, s := range all {
		list = append(list, bars.Bar{Name: "every tag restores byte-exact: " + s.name, OK: s.exact == s.checked,
			Got: fmt.Sprintf("%d of %d", s.exact, s.checked)})
	}
	for _, s := range all[1:] {
		list = append(list, bars.Bar{Name: "restore >= 2x faster than DWO's: " + s.name,
			OK: h.dwoRestore.seconds >= 2*s.restore.seconds,
			Got: fmt.Sprintf("%.1fx (%.2f s vs %.2f s; single layer %.2f s)", h.dwoRestore.seconds/s.restore.seconds,
				s.restore.seconds, h.dwoRestore.seconds, dwo.restore.seconds)})
	}
	list = append(list, bars.Bar{Name: "DWO-compatible latest: oras pull + tar -xzf", OK: compat.oras == "byte-exact",
		Got: compat.oras})
	return bars.Print(w, 46, list)
}
