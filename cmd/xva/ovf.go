package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

// ovfFlags are convert's flags for writing an OVF package.
type ovfFlags struct {
	version, diskFormat string
	manifestSHA1        bool
	chunkSize           string
}

func (f *ovfFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.version, "ovf-version", "1.0", "OVF version of an OVA/OVF output: 1.0 or 2.0")
	fl.StringVar(&f.diskFormat, "ovf-disk-format", "vmdk", "disk images of an OVA/OVF output: vmdk (streamOptimized), vhd or qcow2")
	fl.BoolVar(&f.manifestSHA1, "manifest-sha1", false, "SHA-1 digests in the manifest of an OVF 1.0 output, for old consumers (default SHA-256)")
	fl.StringVar(&f.chunkSize, "ovf-chunk-size", "64MiB", "piece size of disks in an OVA written to standard output (ovf:chunkSize)")
}

// changed reports whether any OVF flag was given.
func (f *ovfFlags) changed(cmd *cobra.Command) string {
	for _, name := range []string{"ovf-version", "ovf-disk-format", "manifest-sha1", "ovf-chunk-size"} {
		if cmd.Flags().Changed(name) {
			return name
		}
	}
	return ""
}

// ovfForm is the OVF form convert writes OUT in: "ova" for --format ova or
// an OUT named .ova, "ovf" for --format ovf; "" for an archive.
func ovfForm(format, out string) string {
	switch strings.ToLower(format) {
	case "ova", "ovf":
		return strings.ToLower(format)
	case "":
		if strings.EqualFold(filepath.Ext(out), ".ova") {
			return "ova"
		}
	}
	return ""
}

// convertToOVF writes the archive in as an OVF package at out.
func convertToOVF(cmd *cobra.Command, g *globals, in, out, form string, f *ovfFlags, of *outputFlags) error {
	for _, flag := range []string{"compress", "checksum", "level", "dir", "uuid-seed"} {
		if cmd.Flags().Changed(flag) {
			return usagef("--%s is for XVA archives; OUT %s is an OVF package (%s)", flag, out, form)
		}
	}
	if cmd.Flags().Changed("ovf-chunk-size") && out != "-" {
		return usagef("--ovf-chunk-size cuts the disks of an OVA written to standard output; one written to a file holds each disk whole")
	}
	chunk, err := humanize.ParseBytes(f.chunkSize)
	if err != nil {
		return usagef("--ovf-chunk-size %q: want a size such as 64MiB", f.chunkSize)
	}
	p := xva.OVFOptions{Form: form, Version: f.version, DiskFormat: f.diskFormat, ManifestSHA1: f.manifestSHA1, ChunkSize: int64(chunk)}
	summary, err := summaryWriter(cmd, g, out)
	if err != nil {
		return err
	}
	res, err := xva.ConvertToOVF(cmd.Context(), in, out, p, append(g.options(), xva.WithOverwrite(of.force))...)
	g.settle()
	if err != nil {
		return err
	}
	return printOVFResult(summary, g, res)
}

func printOVFResult(w io.Writer, g *globals, res *xva.OVFResult) error {
	if g.json {
		return printJSON(struct {
			SchemaVersion int `json:"schema_version"`
			*xva.OVFResult
		}{schemaVersion, res})
	}
	for _, d := range res.Disks {
		chunks := ""
		if d.Chunks > 0 {
			chunks = fmt.Sprintf(" in %s", plural(d.Chunks, "chunk"))
		}
		fmt.Fprintf(w, "%s: %s (%s of data) as %s, %s stored%s\n", printable(d.Device), humanize.IBytes(uint64(d.Size)),
			humanize.IBytes(uint64(d.Data)), printable(d.File), humanize.IBytes(uint64(d.Stored)), chunks)
	}
	for _, s := range res.Dropped {
		fmt.Fprintf(w, "not carried over: %s\n", s)
	}
	if res.Output != "-" {
		fmt.Fprintf(w, "wrote %s (%s, OVF %s, %s manifest)\n", printable(res.Output), strings.ToUpper(res.Form), res.Version, res.Manifest)
	}
	return nil
}
