package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newInfoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info ARCHIVE|VMDIR|PACKAGE.ova|IMAGE.vhd|IMAGE.qcow2|PV",
		Short: "Show the VM an archive holds and how its disks are stored",
		Long: `Show an archive's format (generation, form, compression; for the xapi
generation its export_vsn and checksum kind), its VM (name, memory, vCPUs,
boot mode) and, per disk, its device, size, number of chunks or blocks and
stored size. The disks are not decoded, so this is quick even for large
archives; 'xva unpack' checks the data. ARCHIVE is a file, an archive
directory or '-'; given a VM directory (what 'xva unpack' writes), it shows
the VM and each disk's image. Given an OVF package (an OVA or an .ovf), it
shows the VM as an XVA would carry it, each disk's file and stored size,
the manifest, and what an XVA cannot carry.

Given a VHD or VHDX image instead, it shows its type (fixed, dynamic,
differencing), virtual size, block size and count, allocated blocks and
bytes, creator, UUID (a VHDX's virtual disk id) and parent; given a VMDK,
its subformat (createType), virtual size, grain size and count, allocated
grains and bytes; given a qcow2 image, the same with clusters for blocks and
its backing chain (a qcow2 over a backing file is "differencing"). Given an LVM physical volume (a device or
an image of one), it shows its volume group and logical volumes, read from
the LVM2 metadata without the LVM tools.`,
		Example: `  # What an archive holds: the VM, its disks and how they are stored
  xva info web.xva

  # The same as one JSON document (docs/json/info.schema.json)
  xva info --json web.xva

  # A VHD image, and an LVM physical volume holding a XenServer SR
  xva info disk.vhd
  xva info /dev/sdb3`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if xva.IsImage(args[0]) {
				return imageInfo(cmd, g, args[0])
			}
			if xva.IsPV(args[0]) {
				return pvInfo(cmd, g, args[0])
			}
			res, err := xva.Info(cmd.Context(), args[0], g.options()...)
			if err != nil {
				return err
			}
			if g.json {
				format := res.Generation.String()
				if res.OVF != nil {
					format = "ovf"
				}
				return printJSON(struct {
					SchemaVersion int    `json:"schema_version"`
					Kind          string `json:"kind"`
					Format        string `json:"format"`
					*xva.InfoResult
				}{schemaVersion, "archive", format, res})
			}
			printInfo(cmd, res)
			if re, _ := xva.Retarred(args[0]); re {
				fmt.Fprintf(cmd.OutOrStdout(), "\nnote: %s\n", retarredNote(args[0]))
			}
			switch {
			case res.Generation == xva.Legacy && res.Form == "vm directory":
				fmt.Fprintf(cmd.OutOrStdout(), "\nhint: current XenServer/XCP-ng hosts cannot import version 0.1 (legacy) archives; "+
					"'xva upload' converts automatically, or run 'xva pack --format xapi %s OUT.xva'\n", args[0])
			case res.Generation == xva.Legacy:
				fmt.Fprintf(cmd.OutOrStdout(), "\nhint: %s\n", hintLegacy)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

func printInfo(cmd *cobra.Command, r *xva.InfoResult) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	if r.OVF != nil {
		fmt.Fprintf(w, "package:\t%s (%s, OVF %s)\n", printable(r.Archive), r.Form, printable(r.OVF.Version))
		manifest := "none"
		if r.OVF.Manifest != "" {
			manifest = printable(r.OVF.Manifest) + " (" + strings.Join(r.OVF.Algorithms, ", ") + ")"
		}
		fmt.Fprintf(w, "manifest:\t%s\n", manifest)
	} else {
		fmt.Fprintf(w, "archive:\t%s (%s, %s format)\n", printable(r.Archive), r.Form, r.Generation)
	}
	if r.Generation == xva.XAPI {
		fmt.Fprintf(w, "export_vsn:\t%d\n", r.ExportVsn)
		fmt.Fprintf(w, "checksums:\t%s\n", r.Checksum)
	}
	fmt.Fprintf(w, "name:\t%s\n", printable(r.VM.Name))
	if r.VM.Description != "" {
		fmt.Fprintf(w, "description:\t%s\n", printable(r.VM.Description))
	}
	fmt.Fprintf(w, "memory:\t%s\n", humanize.IBytes(uint64(r.VM.Memory)))
	fmt.Fprintf(w, "vcpus:\t%d\n", r.VM.VCPUs)
	fmt.Fprintf(w, "boot:\t%s\n", r.VM.BootMode)
	if r.OVF != nil && r.OVF.Firmware != "" {
		fmt.Fprintf(w, "firmware:\t%s\n", r.OVF.Firmware)
	}
	if r.VM.KernelCmdline != "" {
		fmt.Fprintf(w, "kernel cmdline:\t%s\n", printable(r.VM.KernelCmdline))
	}
	w.Flush()
	fmt.Fprintln(cmd.OutOrStdout())
	w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	unit, stored := "CHUNKS", "STORED"
	switch {
	case r.Form == "vm directory":
		unit, stored = "IMAGE", "ON DISK"
	case r.OVF != nil:
		unit = "FILE\tMEMBERS"
	case r.Generation == xva.XAPI:
		unit = "ID\tBLOCKS"
	}
	fmt.Fprintf(w, "DEVICE\tSIZE\t%s\t%s\tBOOT\n", unit, stored)
	for _, d := range r.Disks {
		boot := ""
		if d.Bootable {
			boot = "yes"
		}
		members := fmt.Sprint(d.Members)
		switch {
		case r.Form == "vm directory":
			members = printable(d.Image)
		case r.OVF != nil && d.Image == "":
			members = "(blank)\t0"
		case r.OVF != nil:
			members = printable(d.Image) + "\t" + members
		case r.Generation == xva.XAPI:
			members = printable(d.ID) + "\t" + members
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", printable(d.Device), humanize.IBytes(uint64(d.Size)), members,
			humanize.IBytes(uint64(d.Compressed)), boot)
	}
	w.Flush()
	if len(r.Networks) > 0 {
		fmt.Fprintln(cmd.OutOrStdout())
		w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VIF\tMAC\tNETWORK\tBRIDGE")
		for _, n := range r.Networks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", printable(n.Device), printable(n.MAC), printable(n.Network), printable(n.Bridge))
		}
		w.Flush()
	}
	if r.OVF != nil && len(r.OVF.Notes) > 0 {
		fmt.Fprintln(cmd.OutOrStdout())
		for _, n := range r.OVF.Notes {
			fmt.Fprintf(cmd.OutOrStdout(), "note: %s\n", printable(n))
		}
	}
}

func imageInfo(cmd *cobra.Command, g *globals, path string) error {
	i, err := xva.InspectImage(cmd.Context(), path)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(struct {
			SchemaVersion int    `json:"schema_version"`
			Kind          string `json:"kind"`
			*xva.ImageInfo
		}{schemaVersion, "image", i})
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "image:\t%s (%s %s)\n", printable(i.Path), i.Type, i.Format)
	fmt.Fprintf(w, "size:\t%s (%d bytes)\n", humanize.IBytes(uint64(i.Size)), i.Size)
	if i.Blocks > 0 {
		fmt.Fprintf(w, "blocks:\t%d of %s, %d allocated\n", i.Blocks, humanize.IBytes(uint64(i.BlockSize)), i.Allocated)
	}
	fmt.Fprintf(w, "allocated:\t%s\n", humanize.IBytes(uint64(i.AllocatedBytes)))
	if i.Creator != "" {
		fmt.Fprintf(w, "creator:\t%s\n", printable(i.Creator))
	}
	if i.UUID != "" {
		fmt.Fprintf(w, "uuid:\t%s\n", printable(i.UUID))
	}
	switch {
	case len(i.Backing) > 0:
		for n, b := range i.Backing {
			fmt.Fprintf(w, "backing file %d:\t%s\n", n+1, printable(b))
		}
	case i.Parent != "":
		fmt.Fprintf(w, "parent:\t%s (%s)\n", printable(i.Parent), i.ParentUUID)
	}
	return w.Flush()
}

func pvInfo(cmd *cobra.Command, g *globals, path string) error {
	i, err := xva.InspectPV(path)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(struct {
			SchemaVersion int    `json:"schema_version"`
			Kind          string `json:"kind"`
			*xva.PVInfo
		}{schemaVersion, "pv", i})
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "physical volume:\t%s (%s)\n", printable(i.Path), printable(i.UUID))
	fmt.Fprintf(w, "volume group:\t%s (seqno %d, extents of %s, %d PVs)\n", printable(i.VG), i.Seqno,
		humanize.IBytes(uint64(i.ExtentSize)), len(i.PVs))
	w.Flush()
	fmt.Fprintln(cmd.OutOrStdout())
	w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LV\tSIZE\tSEGMENTS\tCONTENT\tON THIS PV")
	for _, lv := range i.LVs {
		content := "raw"
		if lv.VHD {
			content = "vhd"
		}
		if !lv.OnThisPV {
			content = "?"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%v\n", printable(lv.Name), humanize.IBytes(uint64(lv.Size)), lv.Segments, content, lv.OnThisPV)
	}
	return w.Flush()
}
