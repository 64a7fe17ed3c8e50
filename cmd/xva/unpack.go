package main

import (
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newUnpackCmd(g *globals) *cobra.Command {
	var salvage bool
	var format string
	cmd := &cobra.Command{
		Use:   "unpack ARCHIVE OUTDIR",
		Short: "Write an archive's VM out as ova.xml plus one sparse raw image per disk",
		Long: `Unpack an XVA archive into a VM directory: the archive's ova.xml, unchanged,
plus one image per disk named after its device: sda.raw, sparse (zero runs
of 4 KiB and more become holes), or with --disk-format vhd a dynamic VHD
(sda.vhd; all-zero 2 MiB blocks left unallocated) or vhd-fixed, which qemu,
Hyper-V, libvhdi and XenServer all read at exactly the disk's size.

ARCHIVE is a .xva file of either generation (plain, gzip or zstd), an
archive directory, or '-' for standard input. Every chunk's CRC-32 and length,
or every block's hash, is checked; on any failure nothing is left behind. OUTDIR must not exist or be empty; it appears only when complete.
'xva pack OUTDIR new.xva' rebuilds the same archive.`,
		Example: `  # Unpack web.xva into vm/
  xva unpack web.xva vm/

  # Unpack from a pipe
  cat web.xva | xva unpack - vm/

  # Disks as dynamic VHDs, for Hyper-V, Azure or a XenServer SR
  xva unpack --disk-format vhd web.xva vm/

  # Rescue what a damaged xapi archive holds, bad blocks included
  xva unpack --salvage damaged.xva rescued/`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := append(g.options(), xva.WithDiskFormat(format))
			if salvage {
				opts = append(opts, xva.WithSalvage(func(e xva.BadBlock) {
					fmt.Fprintf(cmd.ErrOrStderr(), "bad block: %s (offset %d): %v; written as found\n", e.Member, e.Offset, e.Err)
				}))
			}
			res, err := xva.Unpack(cmd.Context(), args[0], args[1], opts...)
			if res == nil {
				return err
			}
			if g.json {
				if jerr := printJSON(unpackJSON(res)); jerr != nil {
					return jerr
				}
				return err
			}
			for _, d := range res.Disks {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%s of data)\n", d.Path,
					humanize.IBytes(uint64(d.Size)), humanize.IBytes(uint64(d.Data)))
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&format, "disk-format", "raw", "image format: raw, vhd (dynamic) or vhd-fixed")
	cmd.Flags().BoolVar(&salvage, "salvage", false, "xapi archives: write blocks that fail their hash as found, report each, and exit 3")
	return cmd
}

type unpackResultJSON struct {
	SchemaVersion int                `json:"schema_version"`
	OutDir        string             `json:"outdir"`
	Format        string             `json:"format"`
	Disks         []unpackedDiskJSON `json:"disks"`
	BadBlocks     []badBlockJSON     `json:"bad_blocks"`
}

type badBlockJSON struct {
	Member  string `json:"member"`
	Offset  int64  `json:"offset"`
	Message string `json:"message"`
}

type unpackedDiskJSON struct {
	Device    string `json:"device"`
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	DataBytes int64  `json:"data_bytes"`
}

func unpackJSON(r *xva.UnpackResult) unpackResultJSON {
	out := unpackResultJSON{SchemaVersion: schemaVersion, OutDir: r.OutDir, Format: r.Generation.String(),
		Disks: []unpackedDiskJSON{}, BadBlocks: []badBlockJSON{}}
	for _, b := range r.BadBlocks {
		out.BadBlocks = append(out.BadBlocks, badBlockJSON{b.Member, b.Offset, b.Err.Error()})
	}
	for _, d := range r.Disks {
		out.Disks = append(out.Disks, unpackedDiskJSON{d.Device, d.Path, d.Size, d.Data})
	}
	return out
}
