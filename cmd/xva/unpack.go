package main

import (
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newUnpackCmd(g *globals) *cobra.Command {
	var salvage, prezeroed bool
	var clusterSize, compress string
	var format, createLV string
	var targets []string
	cmd := &cobra.Command{
		Use:   "unpack ARCHIVE|PACKAGE.ova OUTDIR",
		Short: "Write an archive's VM out as ova.xml plus one sparse raw image per disk",
		Long: `Unpack an XVA archive into a VM directory: the archive's ova.xml, unchanged,
plus one image per disk named after its device (sda.raw), in the format
--disk-format names. Given an OVF package (an OVA or an .ovf), the directory
gets an xapi ova.xml describing its VM and its disks as xvda, xvdb, ...,
ready for 'xva pack'. The formats:

` + diskFormatList() + `
qemu, Hyper-V, libvhdi and XenServer all read the VHDs at exactly the disk's
size; qemu, VMware and VirtualBox read the VMDKs at it too (padded to a whole
512-byte sector when it is not one); vmdk-stream's grains are compressed
on --jobs workers. qcow2 images are
version 3, checked clean by qemu-img check; --cluster-size sets their
cluster size and --compress zlib|zstd compresses each cluster that gets
smaller, on --jobs cores. qemu reads the
VHDXs at the disk's size rounded up to whole 512-byte sectors (the rest
zeros).

--disk DEVICE=TARGET sends a disk elsewhere: a file, a block device such as
/dev/sdb or /dev/VG/LV (written with O_DIRECT; every byte the disk does not
write is zeroed, unless --prezeroed; a device smaller than the disk is
refused before anything is written), or a logical volume on its physical
volume, lvm:PV_PATH:VG/LV, read from the LVM2 metadata itself (for images
of PVs, rescue systems, or hosts without device-mapper). --create-lv VG
creates a volume per disk as a XenServer LVM SR names and sizes them
(LV-<vdi uuid> for raw, VHD-<vdi uuid> with the footer at its end for
--disk-format vhd) and writes the disk there.

ARCHIVE is a .xva file of either generation (plain, gzip or zstd), an
archive directory, or '-' for standard input. Every chunk's CRC-32 and length,
or every block's hash, is checked; on any failure nothing is left behind. OUTDIR must not exist or be empty; it appears only when complete.
'xva pack OUTDIR new.xva' rebuilds the same archive.`,
		Example: `  # Unpack web.xva into vm/, reading it from a pipe
  cat web.xva | xva unpack - vm/

  # Disks as dynamic VHDs, for Hyper-V, Azure or a XenServer SR
  xva unpack --disk-format vhd web.xva vm/

  # The boot disk straight onto a logical volume, the rest as files
  xva unpack --disk sda=/dev/VG_XenStorage-1234/LV-disk web.xva vm/

  # Rescue what a damaged xapi archive holds, bad blocks included (exit 3)
  xva unpack --salvage damaged.xva rescued/`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := append(g.options(), xva.WithDiskFormat(format), xva.WithCreateLV(createLV), xva.WithPrezeroed(prezeroed))
			if clusterSize != "" {
				n, err := humanize.ParseBytes(clusterSize)
				if err != nil || n > 1<<40 {
					return usagef("--cluster-size %q: want a size such as 64KiB", clusterSize)
				}
				opts = append(opts, xva.WithClusterSize(int64(n)))
			}
			if compress != "" {
				opts = append(opts, xva.WithImageCompression(compress))
			}
			for _, t := range targets {
				dev, target, ok := strings.Cut(t, "=")
				if !ok || dev == "" || target == "" {
					return usagef("--disk %q: want DEVICE=TARGET, e.g. xvda=/dev/sdb", t)
				}
				opts = append(opts, xva.WithDiskTarget(dev, target))
			}
			if salvage {
				opts = append(opts, xva.WithSalvage(func(e xva.BadBlock) {
					fmt.Fprintf(cmd.ErrOrStderr(), "bad block: %s: %s; written as found\n", printable(xva.Where(e.Member, "", e.Offset)), printable(xva.PlainError(e.Err)))
				}))
			}
			if re, _ := xva.Retarred(args[0]); re {
				fmt.Fprintf(g.chatter(cmd.ErrOrStderr()), "xva: note: %s: read in name order; %s\n", args[0], retarredNote(args[0]))
			}
			res, err := xva.Unpack(cmd.Context(), args[0], args[1], opts...)
			g.settle()
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
				fmt.Fprintf(g.chatter(cmd.OutOrStdout()), "%s: %s (%s of data)\n", printable(d.Path),
					humanize.IBytes(uint64(d.Size)), humanize.IBytes(uint64(d.Data)))
			}
			for _, n := range res.Notes {
				fmt.Fprintf(g.chatter(cmd.OutOrStdout()), "note: %s\n", printable(n))
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	addModeFlag(cmd)
	cmd.Flags().StringVar(&format, "disk-format", xva.DiskFormats()[0].Name, "image format: "+xva.DiskFormatNames())
	cmd.Flags().StringArrayVar(&targets, "disk", nil, "DEVICE=TARGET: write a disk to a file, block device or lvm:PV:VG/LV (repeatable)")
	cmd.Flags().StringVar(&createLV, "create-lv", "", "create a volume per disk in this VG, by XenServer's SR conventions")
	cmd.Flags().BoolVar(&prezeroed, "prezeroed", false, "target devices already read as zeros: do not zero what the disk does not write")
	cmd.Flags().BoolVar(&salvage, "salvage", false, "xapi archives: write blocks that fail their hash as found, report each, and exit 3")
	cmd.Flags().StringVar(&clusterSize, "cluster-size", "", "qcow2: cluster size, 512B to 2MiB (default 64KiB)")
	cmd.Flags().StringVar(&compress, "compress", "", "qcow2: compress clusters with zlib or zstd (zstd needs qemu 5.1 or later), on --jobs cores")
	return cmd
}

type unpackResultJSON struct {
	SchemaVersion int                `json:"schema_version"`
	OutDir        string             `json:"outdir"`
	Format        string             `json:"format"`
	Disks         []unpackedDiskJSON `json:"disks"`
	BadBlocks     []badBlockJSON     `json:"bad_blocks"`
	Notes         []string           `json:"notes"`
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
		Disks: []unpackedDiskJSON{}, BadBlocks: []badBlockJSON{}, Notes: append([]string{}, r.Notes...)}
	for _, b := range r.BadBlocks {
		out.BadBlocks = append(out.BadBlocks, badBlockJSON{b.Member, b.Offset, b.Err.Error()})
	}
	for _, d := range r.Disks {
		out.Disks = append(out.Disks, unpackedDiskJSON{d.Device, d.Path, d.Size, d.Data})
	}
	return out
}

// diskFormatList is the formats unpack writes, a line each, from the
// library's format table.
func diskFormatList() string {
	var b strings.Builder
	name, ext := 0, 0
	for _, f := range xva.DiskFormats() {
		if f.Write {
			name, ext = max(name, len(f.Name)), max(ext, len(f.Ext))
		}
	}
	for _, f := range xva.DiskFormats() {
		if f.Write {
			fmt.Fprintf(&b, "  %-*s sda%-*s %s\n", name, f.Name, ext+1, f.Ext, f.Help)
		}
	}
	return b.String()
}
