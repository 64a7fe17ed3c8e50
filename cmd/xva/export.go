package main

import (
	"fmt"
	"io"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/xapi"
)

type exportFlags struct {
	remote      remoteFlags
	vms, tags   []string
	all         bool
	parallel    int
	compression string
	force       bool
}

// many reports whether the flags ask for the export of many VMs into a
// directory rather than one into a file: --all, a --tag, or more than one
// --vm.
func (f *exportFlags) many() bool { return f.all || len(f.tags) > 0 || len(f.vms) > 1 }

func newExportCmd(g *globals) *cobra.Command {
	f := &exportFlags{}
	cmd := &cobra.Command{
		Use:   "export --url https://HOST --vm UUID OUTPUT | --all|--tag TAG|--vm UUID... OUTDIR",
		Short: "Download VMs from a XenServer / XCP-ng pool, checking each as it comes",
		Long: `Download a halted or suspended VM from the pool's /export as an xapi
archive, to OUTPUT or standard output ('-'). Every block hash is verified
while the archive streams; OUTPUT appears only when all is well (exit 3
and nothing written if the download is corrupt). --compress asks the host
to compress the stream (zstd or gzip).

With --all (every VM but templates, snapshots and control domains), --tag
TAG (the VMs carrying it; repeatable) or more than one --vm (a uuid, or a
name only one VM has), OUTPUT is a directory, made if missing, and the VMs
are downloaded --parallel at a time (default 2), each to its own archive
named UUID-NAME.xva (.xva.zst, .xva.gz with --compress), each checked as
it streams. One line per VM says how it went: "ok" with its size and time,
or "FAILED" with the reason; a failed VM leaves nothing, and the others
still complete. A VM that is running is a failure (the host exports only
halted and suspended VMs), as is an archive already there (unless
--force). Exit code: 0 when all are exported, 3 when any download was
corrupt, else 1 when any failed. --json prints one summary document
(docs/json/export.schema.json).`,
		Example: `  # Download a VM, checking every block hash on the way
  XVA_PASSWORD=secret xva export --url https://xenserver.example.com --vm 5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10 exported.xva

  # Let the host compress it with zstd
  xva export --url https://pool.example.com --password-file pw.txt --vm 5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10 --compress zstd exported.xva.zst

  # Every VM of the pool, three at a time, into backups/
  xva export --url https://pool.example.com --password-file pw.txt --all --parallel 3 --compress zstd backups/

  # The VMs tagged "nightly", with a summary for a script
  xva export --url https://pool.example.com --password-file pw.txt --tag nightly --json backups/ > summary.json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.many() {
				return runExportMany(cmd, g, f, args[0])
			}
			return runExport(cmd, g, f, args[0])
		},
	}
	f.remote.register(cmd)
	addModeFlag(cmd)
	cmd.Flags().StringArrayVar(&f.vms, "vm", nil, "uuid of the VM to export; repeat it for several (a name only one VM has is taken too)")
	cmd.Flags().BoolVar(&f.all, "all", false, "export every VM of the pool but templates, snapshots and control domains, into the directory OUTPUT")
	cmd.Flags().StringArrayVar(&f.tags, "tag", nil, "export the VMs carrying this tag, into the directory OUTPUT; repeatable")
	cmd.Flags().IntVar(&f.parallel, "parallel", 2, "downloads at once when exporting several VMs")
	cmd.Flags().StringVar(&f.compression, "compress", "", "ask the host to compress the stream: zstd or gzip")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace OUTPUT (with several VMs, an archive in OUTPUT) if it exists")
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

func runExport(cmd *cobra.Command, g *globals, f *exportFlags, output string) error {
	ctx := cmd.Context()
	if len(f.vms) == 0 || f.vms[0] == "" {
		return usagef("--vm UUID is required (or --all, or --tag TAG, to export several VMs into a directory)")
	}
	vm := f.vms[0]
	if f.compression != "" && f.compression != "zstd" && f.compression != "gzip" {
		return usagef("--compress %q: want zstd or gzip", f.compression)
	}
	if _, err := f.remote.checkURL(); err != nil {
		return err
	}
	if err := refuseTerminal(output); err != nil {
		return err
	}
	var out io.Writer = os.Stdout
	var file *xva.AtomicFile
	if output != "-" {
		var err error
		if file, err = xva.CreateAtomic(output, f.force); err != nil {
			return err
		}
		defer file.Abort() // no-op after Commit
		out = file
	} else if g.json {
		return usagef("--json prints to standard output, which OUTPUT '-' already uses")
	}
	c, err := f.remote.login(ctx, g)
	if err != nil {
		return err
	}
	defer logout(c)
	if !xapi.IsUUID(vm) {
		// A name: the one user VM that has it, as with several --vm.
		recs, err := c.VMRecords(ctx)
		if err != nil {
			return fmt.Errorf("listing the pool's VMs: %w", err)
		}
		vms, err := xapi.Select(recs, xapi.Selection{VMs: []string{vm}})
		if err != nil {
			return err
		}
		vm = vms[0].UUID
	}
	res, err := xva.Export(ctx, c, vm, out, xva.ExportOptions{Compression: f.compression,
		Progress: g.rep.transfer("export", -1)}, xva.WithJobs(g.jobs), xva.WithLogger(g.log))
	g.settle()
	if xva.IsCorrupt(err) && res != nil && g.json {
		return err // the error document names the first problem
	}
	if xva.IsCorrupt(err) && res != nil {
		w := cmd.ErrOrStderr()
		fmt.Fprintf(w, "CORRUPT  the download: %s\n", plural(len(res.Problems), "problem"))
		for _, p := range res.Problems {
			fmt.Fprintf(w, "  %-11s %s: %s\n", p.Kind, printable(xva.Where(p.Member, p.Disk, p.Offset)), printable(xva.PlainError(p.Err)))
		}
		if output == "-" {
			return silentError{exitCorrupt, "the download is corrupt; what it held was written to standard output already: do not use it"}
		}
		return silentError{exitCorrupt, "the download is corrupt; nothing was written"}
	}
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Commit(); err != nil {
			return err
		}
	}
	if g.json {
		return printJSON(struct {
			SchemaVersion int     `json:"schema_version"`
			Output        string  `json:"output"`
			Bytes         int64   `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			Verified      bool    `json:"verified"`
		}{schemaVersion, output, res.Received, res.Seconds, true})
	}
	fmt.Fprintf(g.chatter(cmd.ErrOrStderr()), "exported %s: %s in %.1fs, every block hash checked\n", vm,
		humanize.IBytes(uint64(res.Received)), res.Seconds)
	return nil
}
