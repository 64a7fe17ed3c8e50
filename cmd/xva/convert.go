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

func newConvertCmd(g *globals) *cobra.Command {
	f := &outputFlags{}
	of := &ovfFlags{}
	var device, diskFormat string
	cmd := &cobra.Command{
		Use:   "convert IN OUT",
		Short: "Convert an archive between generations, compressions and forms, or a disk image between formats",
		Long: `Convert an XVA archive in one streaming pass, with no temporary disk
images: legacy (version 0.1) to xapi and back, plain to gzip or zstd and
back, directory form to single file and back. Every checksum of the input is
verified on the way; the output appears only when complete.

Current XenServer / XCP-ng hosts import only the xapi generation; hosts
before 2021 also import legacy archives.

With --disk DEVICE, OUT is one disk of the archive as an image, in the
format --disk-format names or OUT's extension says (.qcow2, .vmdk, .vhdx,
.vhd, .raw): the archive is read no further than that disk. Given a disk
image (recognised by content, or a .raw/.img file), convert writes it as an
image in another format, reading only its data. For a qcow2 output,
--compress zlib|zstd compresses its clusters, on --jobs cores.

OVF packages (DMTF DSP0243), for VMware, VirtualBox, Proxmox, oVirt and
the rest: an OUT named .ova (or --format ova) is an OVA, a tar with the .ovf
first, one streamOptimized VMDK per disk (--ovf-disk-format vhd|qcow2 for
others) and a SHA-256 manifest last, written in one pass; OUT "-" streams it,
each disk in --ovf-chunk-size pieces (ovf:chunkSize). --format ovf writes the
directory form (NAME.ovf, NAME.mf, a file per disk) into the directory OUT.
The other way, an OVA or .ovf input is converted to an XVA (xapi unless
--format legacy), its disks read in place (VMDK, VHD, qcow2, VHDX, raw;
chunked or gzip-compressed files too). What one format cannot say of the
VM is listed as "not carried over".`,
		Example: `  # Make an old archive importable by a current host
  xva convert old.xva new.xva --format xapi

  # Take one disk out of an archive as a dynamic VHD
  xva convert web.xva sda.vhd --disk sda

  # Move a VM to VMware or VirtualBox, and one from there to XenServer
  xva convert web.xva web.ova
  xva convert appliance.ova appliance.xva`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refuseTerminal(args[1]); err != nil {
				return err
			}
			if strings.EqualFold(filepath.Ext(args[1]), ".ovf") {
				return usagef("OUT %s: an OVF descriptor comes with its disk files; write an OVA (name OUT .ova), or the directory form with --format ovf and a directory OUT", args[1])
			}
			if form := ovfForm(f.format, args[1]); form != "" {
				if xva.IsOVF(args[0]) {
					return usagef("%s is an OVF package already: convert it to an XVA, or copy it", args[0])
				}
				if device != "" || diskFormat != "" {
					return usagef("--disk and --disk-format write one disk as an image; for the disks of an OVF package give --ovf-disk-format")
				}
				return convertToOVF(cmd, g, args[0], args[1], form, of, f)
			}
			if name := of.changed(cmd); name != "" {
				return usagef("--%s is for an OVF package output: name OUT .ova, or give --format ova or --format ovf", name)
			}
			imageCompress := ""
			if cmd.Flags().Changed("compress") {
				imageCompress = f.compress
			}
			if done, err := convertImage(cmd, g, args[0], args[1], device, diskFormat, imageCompress); done || err != nil {
				return err
			}
			opts, err := f.options(cmd, args[1])
			if err != nil {
				return err
			}
			summary, err := summaryWriter(cmd, g, args[1])
			if err != nil {
				return err
			}
			res, err := xva.Convert(cmd.Context(), args[0], args[1], append(g.options(), opts...)...)
			if err != nil {
				return err
			}
			g.settle()
			return printPackResult(summary, g, res)
		},
	}
	f.register(cmd, "what to write: legacy or xapi (an XVA's generation; default: the input's, xapi for an OVF input), ova or ovf (an OVF package)")
	of.register(cmd)
	addModeFlag(cmd)
	cmd.Flags().StringVar(&device, "disk", "", "write this disk (its device, e.g. xvda) of the archive as the image OUT")
	cmd.Flags().StringVar(&diskFormat, "disk-format", "", "image format of OUT with --disk or an image input: "+xva.DiskFormatNames()+" (default: by OUT's extension)")
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

// convertImage handles the conversions whose output is a disk image: an
// image input, or --disk. It reports whether it did the work. An archive
// to an output whose name says an image format is refused.
func convertImage(cmd *cobra.Command, g *globals, in, out, device, diskFormat, compress string) (bool, error) {
	// A disk image: recognised by content, a .raw/.img file, or a medium
	// (a block device, lvm:PV:VG/LV).
	image := xva.IsDiskImage(in) || xva.ImageFormatOf(in) == "raw" || xva.IsMedium(in)
	named := xva.ImageFormatOf(out)
	switch {
	case !image && device == "" && named != "" && diskFormat == "":
		return true, usagef("OUT %s names a %s image, not an archive: give --disk DEVICE to write one disk of the archive as an image, or name the archive .xva", out, named)
	case !image && device == "" && diskFormat != "":
		return true, usagef("--disk-format needs --disk DEVICE (one disk of an archive as an image) or an image input")
	case !image && device == "":
		return false, nil
	case image && device != "":
		return true, usagef("--disk takes a disk out of an archive; %s is a disk image", in)
	case image && named == "" && diskFormat == "":
		return false, nil // an archive wanted from an image: the reader says what the input is
	}
	for _, flag := range []string{"format", "checksum", "level", "dir", "uuid-seed", "force"} {
		if cmd.Flags().Changed(flag) {
			return true, usagef("--%s is for archives; OUT %s is a disk image (an existing file is never replaced)", flag, out)
		}
	}
	opts := g.options()
	if diskFormat != "" {
		opts = append(opts, xva.WithDiskFormat(diskFormat))
	}
	switch compress {
	case "":
	case "zlib", "zstd":
		opts = append(opts, xva.WithImageCompression(compress)) // qcow2's compression types
	default:
		return true, usagef("--compress %s: an image output takes zlib or zstd (qcow2's compressed clusters)", compress)
	}
	var res *xva.ImageResult
	var err error
	if image {
		res, err = xva.ConvertImage(cmd.Context(), in, out, opts...)
	} else {
		res, err = xva.ExtractDisk(cmd.Context(), in, device, out, opts...)
	}
	g.settle()
	if err != nil {
		return true, err
	}
	return true, printImageResult(cmd.OutOrStdout(), g, res)
}

func printImageResult(w io.Writer, g *globals, res *xva.ImageResult) error {
	if g.json {
		return printJSON(struct {
			SchemaVersion int `json:"schema_version"`
			*xva.ImageResult
		}{schemaVersion, res})
	}
	fmt.Fprintf(g.chatter(w), "wrote %s (%s image, %s, %s of data)\n", printable(res.Output), res.Format,
		humanize.IBytes(uint64(res.Size)), humanize.IBytes(uint64(res.Data)))
	return nil
}
