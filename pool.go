package xva

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/xva-tools/xva/xapi"
)

// PoolExportOptions say how ExportVMs downloads several VMs.
type PoolExportOptions struct {
	// Compression asks the host to compress each stream: "zstd", "gzip"
	// or "".
	Compression string
	// Parallel is how many downloads run at once; 0 means 2.
	Parallel int
	// Force replaces an archive that exists; without it an existing one
	// is that VM's failure, and the file is left alone.
	Force bool
	// Start, if set, is told as each VM's download starts and returns
	// what to tell its progress to (or nil). Calls may be concurrent.
	Start func(vm xapi.VMRecord) func(received int64, task float64)
	// Done, if set, is told each VM's outcome as it ends, one call at a
	// time.
	Done func(VMExport)
}

// VMExport is the outcome of one VM's download.
type VMExport struct {
	VM     xapi.VMRecord
	Output string // where its archive is, or would have been
	// Result is what was received, nil if the download did not end (the
	// host refused it, the connection broke, the output exists).
	Result  *ExportResult
	Err     error // nil when the archive is in place and intact
	Seconds float64
}

// Corrupt reports whether the download ended and was found corrupt.
func (e VMExport) Corrupt() bool { return IsCorrupt(e.Err) }

// ExportName is the file name of vm's archive: its uuid and its name,
// sanitised, with the extension of the compression asked for, e.g.
// 5f1c8a52-…-web-01.xva.zst. The uuid makes it unique in a pool; the name
// is there for people.
func ExportName(vm xapi.VMRecord, compression string) string {
	ext := ".xva"
	switch compression {
	case "zstd":
		ext = ".xva.zst"
	case "gzip":
		ext = ".xva.gz"
	}
	if n := sanitiseName(vm.Name); n != "" {
		return vm.UUID + "-" + n + ext
	}
	return vm.UUID + ext
}

// maxNameLen bounds the name part of an export's file name, in bytes: a
// uuid, a name and an extension stay well inside any file system's 255.
const maxNameLen = 100

// sanitiseName keeps a VM name's letters, digits, '.', '-' and '_', and
// makes every other run of characters (spaces, slashes, control and shell
// characters) one '_'; names are free text in xapi. Leading and trailing
// dots, dashes and underscores go: no hidden files, no "..".
func sanitiseName(name string) string {
	var b strings.Builder
	under := false
	for _, r := range name {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
		if b.Len() >= maxNameLen {
			break
		}
	}
	return strings.Trim(b.String(), "._-")
}

// ExportVMs downloads each of vms from the pool c is logged in to into its
// own archive in dir (named by ExportName, made through CreateAtomic),
// Parallel at a time, each checked as it streams as Export does. A VM
// whose download fails or is corrupt leaves nothing under its name; the
// others go on. The outcomes come back in the order of vms.
func ExportVMs(ctx context.Context, c *xapi.Client, vms []xapi.VMRecord, dir string, o PoolExportOptions, opts ...Option) []VMExport {
	par := o.Parallel
	if par <= 0 {
		par = 2
	}
	out := make([]VMExport, len(vms))
	var done sync.Mutex
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, vm := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() == nil {
				out[i] = exportOne(ctx, c, vm, dir, o, opts)
				<-sem
			} else {
				out[i] = VMExport{VM: vm, Output: JoinOutput(dir, ExportName(vm, o.Compression)), Err: ctx.Err()}
			}
			if o.Done != nil {
				done.Lock()
				o.Done(out[i])
				done.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// exportOne downloads one VM to its archive in dir.
func exportOne(ctx context.Context, c *xapi.Client, vm xapi.VMRecord, dir string, o PoolExportOptions, opts []Option) (e VMExport) {
	start := time.Now()
	e = VMExport{VM: vm, Output: JoinOutput(dir, ExportName(vm, o.Compression))}
	defer func() { e.Seconds = time.Since(start).Seconds() }()
	f, err := CreateAtomic(e.Output, o.Force)
	if err != nil {
		e.Err = err
		return e
	}
	defer f.Abort() // no-op after Commit
	var progress func(int64, float64)
	if o.Start != nil {
		progress = o.Start(vm)
	}
	e.Result, e.Err = Export(ctx, c, vm.UUID, f, ExportOptions{Compression: o.Compression, Progress: progress}, opts...)
	if e.Err != nil {
		return e
	}
	if err := f.Commit(); err != nil {
		e.Err = fmt.Errorf("writing %s: %w", e.Output, err)
	}
	return e
}
