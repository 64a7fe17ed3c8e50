package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/xapi"
)

// exportManyDoc is what export --json prints for several VMs.
type exportManyDoc struct {
	SchemaVersion int           `json:"schema_version"`
	OK            bool          `json:"ok"`
	Output        string        `json:"output"`
	Exported      int           `json:"exported"`
	Failed        int           `json:"failed"`
	Corrupt       int           `json:"corrupt"`
	Seconds       float64       `json:"seconds"`
	VMs           []exportVMDoc `json:"vms"`
}

// exportVMDoc is one VM's outcome in exportManyDoc.
type exportVMDoc struct {
	UUID       string             `json:"uuid"`
	Name       string             `json:"name"`
	PowerState string             `json:"power_state"`
	Output     string             `json:"output"`
	OK         bool               `json:"ok"`
	Bytes      int64              `json:"bytes"`
	Seconds    float64            `json:"seconds"`
	Failure    string             `json:"failure,omitempty"` // the kind, as error documents name it
	Error      string             `json:"error,omitempty"`
	Problems   []exportProblemDoc `json:"problems"`
}

type exportProblemDoc struct {
	Kind    string `json:"kind"`
	Member  string `json:"member"`
	Disk    string `json:"disk"`
	Offset  int64  `json:"offset"`
	Message string `json:"message"`
}

// runExportMany exports the VMs the flags select into the directory dir,
// f.parallel at a time, printing a line per VM as each ends.
func runExportMany(cmd *cobra.Command, g *globals, f *exportFlags, dir string) error {
	ctx := cmd.Context()
	start := time.Now()
	if f.compression != "" && f.compression != "zstd" && f.compression != "gzip" {
		return usagef("--compress %q: want zstd or gzip", f.compression)
	}
	if f.parallel < 1 {
		return usagef("--parallel must be at least 1, got %d", f.parallel)
	}
	if slices.Contains(f.vms, "") || slices.Contains(f.tags, "") {
		return usagef("--vm and --tag need a value")
	}
	if dir == "-" {
		return usagef("several VMs go into a directory: OUTPUT '-' (standard output) holds one; give a directory")
	}
	if _, err := f.remote.checkURL(); err != nil {
		return err
	}
	if err := xva.CheckOutputDir(dir); err != nil {
		return usagef("%v", err)
	}
	c, err := f.remote.login(ctx, g)
	if err != nil {
		return err
	}
	defer logout(c)
	recs, err := c.VMRecords(ctx)
	if err != nil {
		return fmt.Errorf("listing the pool's VMs: %w", err)
	}
	vms, err := xapi.Select(recs, xapi.Selection{All: f.all, VMs: f.vms, Tags: f.tags})
	if err != nil {
		return err
	}
	// Made only now: a wrong password or a selection of nothing leaves
	// no empty directory behind.
	if err := xva.MakeOutputDir(dir); err != nil {
		return err
	}
	g.log.Debug("exporting", "vms", len(vms), "parallel", f.parallel, "output", dir)
	// With bars on the terminal, the result lines wait for the end: the
	// bars say how each VM went meanwhile, and lines printed among them
	// would be overdrawn.
	_, live := g.rep.(*bars)
	out := cmd.OutOrStdout()
	var mu sync.Mutex
	var ends sync.Map // uuid → the end func of its progress display
	res := xva.ExportVMs(ctx, c, vms, dir, xva.PoolExportOptions{Compression: f.compression, Parallel: f.parallel, Force: f.force,
		Start: func(vm xapi.VMRecord) func(int64, float64) {
			// The uuid's first group tells VMs of one name apart; the
			// result line gives it whole.
			update, end := g.rep.transferOf(printable(vm.UUID[:min(8, len(vm.UUID))] + " " + vm.Name))
			ends.Store(vm.UUID, end)
			return update
		},
		Done: func(e xva.VMExport) {
			if end, ok := ends.Load(e.VM.UUID); ok {
				end.(func(bool))(e.Err == nil)
			}
			if g.json || live {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			printVMExport(out, e, g.quiet)
		}}, xva.WithJobs(g.jobs), xva.WithLogger(g.log))
	g.settle()
	doc := exportManyDoc{SchemaVersion: schemaVersion, OK: true, Output: dir, Seconds: time.Since(start).Seconds(), VMs: []exportVMDoc{}}
	var failed []string
	for _, e := range res {
		if live && !g.json {
			printVMExport(out, e, g.quiet)
		}
		doc.VMs = append(doc.VMs, vmExportDoc(e))
		switch {
		case e.Err == nil:
			doc.Exported++
			continue
		case e.Corrupt():
			doc.Corrupt++
		default:
			doc.Failed++
		}
		doc.OK = false
		failed = append(failed, fmt.Sprintf("%s (%s)", e.VM.UUID, e.VM.Name))
	}
	if g.json {
		if err := printJSON(doc); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failed) == 0 {
		fmt.Fprintf(g.chatter(cmd.ErrOrStderr()), "exported %s to %s in %.1fs, every block hash checked\n",
			plural(len(res), "VM"), printable(dir), doc.Seconds)
		return nil
	}
	msg := fmt.Sprintf("%d of %s not exported: %s", len(failed), plural(len(res), "VM"), printable(strings.Join(failed, ", ")))
	if doc.Corrupt > 0 {
		return silentError{exitCorrupt, msg}
	}
	return silentError{exitFailure, msg}
}

// printVMExport prints one VM's result line, and a corrupt download's
// problems under it.
func printVMExport(w io.Writer, e xva.VMExport, quiet bool) {
	switch {
	case e.Err == nil:
		if !quiet {
			fmt.Fprintf(w, "ok      %s %s  %s %.1fs\n", e.VM.UUID, printable(e.VM.Name),
				humanize.IBytes(uint64(e.Result.Received)), e.Seconds)
		}
	case e.Corrupt() && e.Result != nil:
		fmt.Fprintf(w, "FAILED  %s %s: the download is corrupt (%s); nothing was written\n", e.VM.UUID, printable(e.VM.Name),
			plural(len(e.Result.Problems), "problem"))
		for _, p := range e.Result.Problems {
			if where := xva.Where(p.Member, p.Disk, p.Offset); where != "" {
				fmt.Fprintf(w, "  %-11s %s: %s\n", p.Kind, printable(where), printable(xva.PlainError(p.Err)))
			} else {
				fmt.Fprintf(w, "  %-11s %s\n", p.Kind, printable(xva.PlainError(p.Err)))
			}
		}
	default:
		fmt.Fprintf(w, "FAILED  %s %s: %s\n", e.VM.UUID, printable(e.VM.Name), printable(xva.PlainError(e.Err)))
	}
}

func vmExportDoc(e xva.VMExport) exportVMDoc {
	d := exportVMDoc{UUID: e.VM.UUID, Name: e.VM.Name, PowerState: e.VM.PowerState, Output: e.Output, OK: e.Err == nil,
		Seconds: e.Seconds, Problems: []exportProblemDoc{}}
	if e.Result != nil {
		d.Bytes = e.Result.Received
		for _, p := range e.Result.Problems {
			d.Problems = append(d.Problems, exportProblemDoc{Kind: string(p.Kind), Member: p.Member, Disk: p.Disk, Offset: p.Offset,
				Message: xva.PlainError(p.Err)})
		}
	}
	if e.Err != nil {
		d.Failure, _ = exitCode(e.Err)
		d.Error = xva.PlainError(e.Err)
	}
	return d
}
