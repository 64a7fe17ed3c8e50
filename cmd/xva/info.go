package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newInfoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info ARCHIVE",
		Short: "Show the VM an archive holds and how its disks are stored",
		Long: `Show an archive's VM (name, memory, vCPUs, boot mode) and, per disk, its
device, size, number of chunks and stored (compressed) size. The disks are
not decoded, so this is quick even for large archives; 'xva unpack' checks
the data.`,
		Example: `  xva info web.xva
  xva info --json web.xva`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := xva.Info(cmd.Context(), args[0], g.options()...)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(struct {
					SchemaVersion int    `json:"schema_version"`
					Format        string `json:"format"`
					*xva.InfoResult
				}{schemaVersion, res.Generation.String(), res})
			}
			printInfo(cmd, res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

func printInfo(cmd *cobra.Command, r *xva.InfoResult) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "archive:\t%s (%s, %s format)\n", r.Archive, r.Form, r.Generation)
	fmt.Fprintf(w, "name:\t%s\n", r.VM.Name)
	if r.VM.Description != "" {
		fmt.Fprintf(w, "description:\t%s\n", r.VM.Description)
	}
	fmt.Fprintf(w, "memory:\t%s\n", humanize.IBytes(uint64(r.VM.Memory)))
	fmt.Fprintf(w, "vcpus:\t%d\n", r.VM.VCPUs)
	fmt.Fprintf(w, "boot:\t%s\n", r.VM.BootMode)
	if r.VM.KernelCmdline != "" {
		fmt.Fprintf(w, "kernel cmdline:\t%s\n", r.VM.KernelCmdline)
	}
	w.Flush()
	fmt.Fprintln(cmd.OutOrStdout())
	w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tSIZE\tCHUNKS\tSTORED\tBOOT")
	for _, d := range r.Disks {
		boot := ""
		if d.Bootable {
			boot = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", d.Device, humanize.IBytes(uint64(d.Size)), d.Members,
			humanize.IBytes(uint64(d.Compressed)), boot)
	}
	w.Flush()
}
