package xva

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/ovf"
	"github.com/xva-tools/xva/vmdk"
)

// OVFOptions says how ConvertToOVF writes a package.
type OVFOptions struct {
	// Form is "ova" (one tar file, or a stream) or "ovf" (a directory of
	// the .ovf, the .mf and one file per disk).
	Form string
	// Version is the OVF version of the envelope: "1.0" (default) or "2.0".
	Version string
	// DiskFormat is the disks' image format: "vmdk" (streamOptimized, the
	// default, what every OVF importer reads), "vhd" or "qcow2".
	DiskFormat string
	// ManifestSHA1 writes SHA-1 digests in the manifest, for consumers of
	// OVF 1.0 that know no other; SHA-256 otherwise.
	ManifestSHA1 bool
	// ChunkSize is the size of the pieces a disk is cut into in an OVA
	// written to a stream (ovf:chunkSize), where a member's size must be
	// known before its data; 0 for DefaultOVFChunkSize.
	ChunkSize int64
}

// DefaultOVFChunkSize is the piece size of disks in an OVA stream: the
// memory one disk's piece takes while it is gathered.
const DefaultOVFChunkSize = 64 << 20

// OVFResult is what ConvertToOVF wrote.
type OVFResult struct {
	Output   string    `json:"output"`
	Form     string    `json:"form"`
	Version  string    `json:"ovf_version"`
	Manifest string    `json:"manifest_algorithm"`
	Disks    []OVFDisk `json:"disks"`
	// Dropped lists what the archive says that the OVF cannot carry.
	Dropped []string `json:"not_carried_over"`
}

// OVFDisk is one disk of a written package.
type OVFDisk struct {
	Device string `json:"device"`
	File   string `json:"file"`
	Format string `json:"format"`
	Size   int64  `json:"size_bytes"`   // the disk's capacity
	Data   int64  `json:"data_bytes"`   // bytes of data in it
	Stored int64  `json:"stored_bytes"` // bytes of its file (all chunks)
	Chunks int    `json:"chunks,omitempty"`
}

// ovfDiskFormats are the image formats a package's disks can have: the
// table's row writing it, its extension and ovf:format URI.
var ovfDiskFormats = map[string]struct{ row, ext, uri string }{
	"vmdk":  {"vmdk-stream", ".vmdk", ovf.FormatVMDKStream},
	"vhd":   {"vhd", ".vhd", ovf.FormatVHD},
	"qcow2": {"qcow2", ".qcow2", ovf.FormatQCOW2},
}

// checkOVFOptions fills in defaults and refuses what cannot be written.
func checkOVFOptions(p *OVFOptions, output string) error {
	if p.Form == "" {
		p.Form = "ova"
	}
	if p.Version == "" {
		p.Version = "1.0"
	}
	if p.DiskFormat == "" {
		p.DiskFormat = "vmdk"
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultOVFChunkSize
	}
	switch {
	case p.Form != "ova" && p.Form != "ovf":
		return fmt.Errorf("%w: OVF form %q (want ova or ovf)", ErrBadOptions, p.Form)
	case p.Version != "1.0" && p.Version != "2.0":
		return fmt.Errorf("%w: --ovf-version %s (want 1.0 or 2.0)", ErrBadOptions, p.Version)
	case p.ManifestSHA1 && p.Version != "1.0":
		return fmt.Errorf("%w: --manifest-sha1 is for OVF 1.0 consumers; OVF 2.0 manifests use SHA-256", ErrBadOptions)
	case p.ChunkSize < 1<<20 || p.ChunkSize%512 != 0:
		return fmt.Errorf("%w: a chunk size must be whole 512-byte blocks and at least 1 MiB", ErrBadOptions)
	case p.Form == "ovf" && output == "-":
		return fmt.Errorf("%w: the OVF directory form cannot go to standard output: write an OVA (--format ova)", ErrBadOptions)
	case output == "-" && p.DiskFormat != "vmdk":
		return fmt.Errorf("%w: a %s image is written with seeks and cannot be streamed: write the OVA to a file, or keep VMDK disks", ErrBadOptions, p.DiskFormat)
	}
	if _, ok := ovfDiskFormats[p.DiskFormat]; !ok {
		return fmt.Errorf("%w: --ovf-disk-format %s (want vmdk, vhd or qcow2)", ErrBadOptions, p.DiskFormat)
	}
	return nil
}

// ConvertToOVF writes the VM of the archive at in as an OVF package at
// output: an OVA (a tar: the .ovf first, each disk, the manifest last) or
// the directory form. One pass over the archive, every checksum verified
// on the way; disks are never held whole, in memory or on disk (VMDK; a
// VHD or qcow2 image in an OVA passes through a temporary file, as it is
// written with seeks). The output appears only when complete.
func ConvertToOVF(ctx context.Context, in, output string, p OVFOptions, opts ...Option) (*OVFResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := checkOVFOptions(&p, output); err != nil {
		return nil, err
	}
	if output != "-" {
		output = filepath.Clean(output) // out/ names the directory out
	}
	if output != "-" && fsutil.Exists(output) && !o.force {
		return nil, fmt.Errorf("%w: %s (use --force to replace it)", ErrExists, output)
	}
	a, err := openArchive(in, o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	x := &ovfExport{a: a, o: o, p: p, base: packageBase(output, a.meta.VM.Label), streamOut: output == "-"}
	x.describe()
	switch {
	case p.Form == "ovf":
		err = x.writeDir(ctx, output)
	case output == "-":
		err = x.writeStream(ctx, bufio.NewWriterSize(os.Stdout, 1<<20))
	default:
		err = x.writeFile(ctx, output)
	}
	if err != nil {
		return nil, err
	}
	x.res.Output = output
	return &x.res, nil
}

// ovfExport is one archive being written as an OVF package.
type ovfExport struct {
	a    *archive
	o    *options
	p    OVFOptions
	base string // the package's name: base.ovf, base.mf, base-DEVICE.vmdk
	// streamOut: the package goes to a stream, where a member's size must
	// be known before its data.
	streamOut bool
	desc      ovf.Descriptor
	mf        ovf.Manifest
	res       OVFResult
}

// packageBase is the name of a package written at output: its file name
// without the extension, or the VM's name for a stream; kept to what a
// ustar member name and an href take: no spaces or separators, at most
// maxBase bytes (whole characters).
func packageBase(output, vmName string) string {
	name := strings.TrimSuffix(filepath.Base(filepath.Clean(output)), filepath.Ext(output))
	if output == "-" {
		name = vmName
	}
	name = strings.Map(func(r rune) rune {
		if r <= 0x20 || r == 0x7f || strings.ContainsRune(`/\:*?"<>|%#`, r) {
			return '_'
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	for len(name) > maxBase {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	if name == "" || name == "." || name == ".." {
		name = "vm"
	}
	return name
}

// maxBase leaves room in a ustar name (100 bytes) for a disk's device, its
// extension and a chunk's number.
const maxBase = 64

// describe makes the envelope of the archive's VM, without file sizes.
func (x *ovfExport) describe() {
	m := x.a.meta
	vm := m.VM
	f := ovfDiskFormats[x.p.DiskFormat]
	sys := ovf.System{ID: x.base, Name: vm.Label, Description: vm.Description, OSType: -1,
		VCPUs: vm.VCPUs, Memory: vm.Memory}
	if vm.HVM {
		sys.Firmware = vm.Firmware
		if sys.Firmware == "" {
			sys.Firmware = "bios"
		}
	}
	for i, d := range m.Disks {
		id := fmt.Sprintf("disk%d", i+1)
		file := ovf.File{ID: fmt.Sprintf("file%d", i+1), Href: fmt.Sprintf("%s-%s%s", x.base, d.Device, f.ext), Size: -1}
		if x.p.Form == "ova" && x.streamOut {
			file.ChunkSize = x.p.ChunkSize
		}
		x.desc.Files = append(x.desc.Files, file)
		// The images hold whole 512-byte sectors: a legacy archive's
		// disk of another size is padded, and the capacity says so.
		capacity := (d.Size + 511) &^ 511
		x.desc.Disks = append(x.desc.Disks, ovf.Disk{ID: id, FileRef: file.ID, Capacity: capacity, PopulatedSize: -1, Format: f.uri})
		x.res.Disks = append(x.res.Disks, OVFDisk{Device: d.Device, File: file.Href, Format: f.row, Size: capacity})
	}
	// The VM's order: the boot disk first, then by device, as the
	// VBDs' userdevice numbers give it in the archive.
	for _, i := range bootOrder(m) {
		sys.Disks = append(sys.Disks, ovf.DiskRef{DiskID: x.desc.Disks[i].ID, Controller: "scsi", Address: -1, Device: -1})
	}
	seen := map[string]bool{}
	for i, v := range vm.VIFs {
		name := v.Network
		if name == "" {
			name = fmt.Sprintf("network %d", i)
		}
		if !seen[name] {
			seen[name] = true
			x.desc.Networks = append(x.desc.Networks, ovf.Network{Name: name})
		}
		sys.NICs = append(sys.NICs, ovf.NIC{Network: name, MAC: v.MAC, Model: "E1000"})
	}
	x.desc.System = sys
	x.res.Form, x.res.Version = x.p.Form, x.p.Version
	x.res.Dropped = ovfDrops(m)
	x.mf.Entries = nil
	x.res.Manifest = x.algorithm()
}

// bootOrder is the order of m's disks in the VM: the bootable disk first,
// then the others in their archive order (the order of their devices).
func bootOrder(m *Metadata) []int {
	var order []int
	for i, d := range m.Disks {
		if d.Bootable {
			order = append(order, i)
		}
	}
	for i, d := range m.Disks {
		if !d.Bootable {
			order = append(order, i)
		}
	}
	return order
}

// ovfDrops lists what an OVF cannot say of the archive's VM.
func ovfDrops(m *Metadata) []string {
	vm := m.VM
	drops := []string{}
	if !vm.HVM {
		drops = append(drops, "paravirtualised boot (PV): an OVF describes virtual hardware, so the VM must boot from its disk as an HVM guest"+
			cmdline(vm))
	}
	if m.Export != nil {
		drops = append(drops, "XenServer's platform flags, boot order and other_config (XenCenter-specific sections are not written)")
	}
	for _, v := range vm.VIFs {
		if v.MTU != 0 && v.MTU != 1500 {
			drops = append(drops, fmt.Sprintf("the MTU of interface %s (%d)", v.Device, v.MTU))
		}
	}
	return drops
}

func cmdline(vm ova.VM) string {
	if vm.KernelCmdline == "" {
		return ""
	}
	return fmt.Sprintf(" (its kernel command line %q is not kept)", vm.KernelCmdline)
}

// algorithm is the manifest's digest algorithm.
func (x *ovfExport) algorithm() string {
	if x.p.ManifestSHA1 {
		return "SHA1"
	}
	return "SHA256"
}

func (x *ovfExport) newHash() hash.Hash {
	if x.p.ManifestSHA1 {
		return sha1.New()
	}
	return sha256.New()
}

// record adds a file's digest to the manifest.
func (x *ovfExport) record(name string, h hash.Hash) {
	x.mf.Entries = append(x.mf.Entries, ovf.ManifestEntry{Algorithm: x.algorithm(), Name: name, Digest: h.Sum(nil)})
}

// descriptor is the envelope's bytes.
func (x *ovfExport) descriptor() ([]byte, error) {
	return x.desc.Marshal(ovf.WriteOptions{Version: x.p.Version})
}

// writeDisks writes each disk of the archive, in archive order, as the
// file write opens for it, and records its sizes.
func (x *ovfExport) writeDisks(ctx context.Context, write func(i int, d *Disk) (data int64, err error)) error {
	for i := 0; ; i++ {
		d, err := x.a.nextDisk()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		k := diskIndex(x.a.meta, d)
		if k < 0 {
			// A disk with no place in the VM (a suspend image): checked, then dropped.
			if err := x.a.decode(ctx, d, func(int64, []byte) error { return nil }); err != nil {
				return err
			}
			continue
		}
		n, err := write(k, d)
		if err != nil {
			return err
		}
		x.res.Disks[k].Data = n
		x.desc.Disks[k].PopulatedSize = n
	}
}

// diskIndex is the index of d among m's disks, -1 if none.
func diskIndex(m *Metadata, d *Disk) int {
	for i := range m.Disks {
		if m.Disks[i].Device == d.Device {
			return i
		}
	}
	return -1
}

// streamDisk writes disk d as a streamOptimized VMDK into w.
func (x *ovfExport) streamDisk(ctx context.Context, w io.Writer, name string, d *Disk) (int64, error) {
	sink, err := vmdk.NewStreamWriter(w, name, d.Size, x.o.jobs)
	if err != nil {
		return 0, err
	}
	return x.decodeAndCommit(ctx, d, sink)
}

// imageDisk writes disk d as an image file at path, in the package's disk
// format.
func (x *ovfExport) imageDisk(ctx context.Context, path string, d *Disk) (int64, error) {
	row := ovfDiskFormats[x.p.DiskFormat].row
	f, err := tunedFormat(row, imageTuning{jobs: x.o.jobs})
	if err != nil {
		return 0, err
	}
	sink, err := f.create(path, d.Size)
	if err != nil {
		return 0, err
	}
	return x.decodeAndCommit(ctx, d, sink)
}

// decodeAndCommit decodes disk d into sink and commits it, or aborts it on
// any error; it returns the bytes of data written.
func (x *ovfExport) decodeAndCommit(ctx context.Context, d *Disk, sink disk.Sink) (int64, error) {
	n, err := x.a.decodeInto(ctx, d, sink)
	if err == nil {
		err = sink.Commit()
	}
	if err != nil {
		sink.Abort()
		return 0, err
	}
	return n, nil
}

// hashFile is the digest and size of the file at path.
func (x *ovfExport) hashFile(path string) (hash.Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := x.newHash()
	n, err := io.Copy(h, f)
	return h, n, err
}

// writeDir writes the directory form: each disk's file, then the .ovf with
// every size known, then the manifest.
func (x *ovfExport) writeDir(ctx context.Context, output string) error {
	exists, err := prepareDir(output)
	if err != nil {
		return err
	}
	tmp, err := fsutil.MkdirTemp(output)
	if err != nil {
		return err
	}
	err = x.fillDir(ctx, tmp)
	if err == nil {
		err = fsutil.PublishDir(tmp, output, exists)
	}
	if err != nil {
		fsutil.DiscardDir(tmp)
	}
	return err
}

func (x *ovfExport) fillDir(ctx context.Context, dir string) error {
	hashes := make([]hash.Hash, len(x.desc.Files))
	err := x.writeDisks(ctx, func(i int, d *Disk) (int64, error) {
		path := filepath.Join(dir, x.desc.Files[i].Href)
		n, err := x.imageDisk(ctx, path, d)
		if err != nil {
			return 0, err
		}
		h, size, err := x.hashFile(path)
		if err != nil {
			return 0, err
		}
		hashes[i] = h
		x.desc.Files[i].Size, x.res.Disks[i].Stored = size, size
		return n, nil
	})
	if err != nil {
		return err
	}
	doc, err := x.descriptor()
	if err != nil {
		return err
	}
	h := x.newHash()
	h.Write(doc)
	x.record(x.base+".ovf", h)
	for i, f := range x.desc.Files {
		x.record(f.Href, hashes[i])
	}
	if err := os.WriteFile(filepath.Join(dir, x.base+".ovf"), doc, fsutil.Mode()); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, x.base+".mf"), x.mf.Marshal(), fsutil.Mode())
}

// writeFile writes an OVA into a temporary file beside output, renamed
// into place when complete.
func (x *ovfExport) writeFile(ctx context.Context, output string) error {
	f, err := fsutil.CreateTemp(output)
	if err != nil {
		return err
	}
	if err := x.fillOVA(ctx, f); err != nil {
		fsutil.Discard(f)
		return err
	}
	return fsutil.Publish(f, output, x.o.force)
}

// fillOVA writes the .ovf first, with room kept for the sizes only known
// later (each file's, each disk's data), then each disk as it is decoded,
// the manifest last; then the .ovf again, with every size, in its room:
// one pass over the archive, and every size in the envelope.
func (x *ovfExport) fillOVA(ctx context.Context, f *os.File) error {
	w := ovf.NewWriter(f)
	w.Hash = x.newHash
	draft, err := x.draft()
	if err != nil {
		return err
	}
	name := x.base + ".ovf"
	if err := w.Add(name, draft); err != nil {
		return err
	}
	err = x.writeDisks(ctx, func(i int, d *Disk) (int64, error) {
		file := x.desc.Files[i].Href
		mw, err := w.Begin(file)
		if err != nil {
			return 0, err
		}
		var n int64
		if x.p.DiskFormat == "vmdk" {
			n, err = x.streamDisk(ctx, mw, file, d)
		} else {
			n, err = x.copyImage(ctx, mw, filepath.Dir(f.Name()), d)
		}
		if err != nil {
			return 0, err
		}
		size, err := w.End()
		x.desc.Files[i].Size, x.res.Disks[i].Stored = size, size
		return n, err
	})
	if err != nil {
		return err
	}
	doc, err := x.descriptor()
	if err != nil {
		return err
	}
	if doc, err = fitInto(doc, len(draft)); err != nil {
		return err
	}
	h := x.newHash()
	h.Write(doc)
	x.record(name, h)
	if err := x.finishOVA(w, w.Written()[1:]); err != nil {
		return err
	}
	// The .ovf is the first member: its data follows the archive's first
	// block, its header.
	if _, err := f.WriteAt(doc, 512); err != nil {
		return ioError{err}
	}
	return nil
}

// draft is the envelope with every size not yet known at its widest, so
// that the final one fits in its room.
func (x *ovfExport) draft() ([]byte, error) {
	d := x.desc
	d.Files = append([]ovf.File(nil), x.desc.Files...)
	d.Disks = append([]ovf.Disk(nil), x.desc.Disks...)
	for i := range d.Files {
		d.Files[i].Size = math.MaxInt64
		d.Disks[i].PopulatedSize = d.Disks[i].Capacity
	}
	return d.Marshal(ovf.WriteOptions{Version: x.p.Version})
}

// fitInto pads doc with white space, which XML allows after the root
// element, to n bytes.
func fitInto(doc []byte, n int) ([]byte, error) {
	if len(doc) > n || len(doc) == 0 {
		return nil, fmt.Errorf("xva: the final descriptor (%d bytes) does not fit the %d kept for it", len(doc), n)
	}
	out := append(doc[:len(doc):len(doc)], strings.Repeat(" ", n-len(doc))...)
	out[n-1] = '\n'
	return out, nil
}

// finishOVA writes the manifest, listing the .ovf (already recorded) and
// the members written after it, and ends the archive.
func (x *ovfExport) finishOVA(w *ovf.Writer, members []ovf.Written) error {
	for _, m := range members {
		x.mf.Entries = append(x.mf.Entries, ovf.ManifestEntry{Algorithm: x.algorithm(), Name: m.Name, Digest: m.Digest})
	}
	if err := w.Add(x.base+".mf", x.mf.Marshal()); err != nil {
		return err
	}
	return w.Close()
}

// copyImage writes disk d as an image in a temporary file in dir (VHD and
// qcow2 are written with seeks) and copies it into w.
func (x *ovfExport) copyImage(ctx context.Context, w io.Writer, dir string, d *Disk) (int64, error) {
	tmp, err := os.MkdirTemp(dir, ".xva-ovf-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "disk")
	n, err := x.imageDisk(ctx, path, d)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return 0, err
	}
	return n, nil
}

// writeStream writes an OVA to a stream: the .ovf without sizes (none is
// known before its data), each disk in chunks of ChunkSize, the manifest.
func (x *ovfExport) writeStream(ctx context.Context, bw *bufio.Writer) error {
	w := ovf.NewWriter(bw)
	w.Hash = x.newHash
	doc, err := x.descriptor()
	if err != nil {
		return err
	}
	if err := w.Add(x.base+".ovf", doc); err != nil {
		return err
	}
	err = x.writeDisks(ctx, func(i int, d *Disk) (int64, error) {
		file := x.desc.Files[i].Href
		cw, err := w.BeginChunked(file, x.p.ChunkSize)
		if err != nil {
			return 0, err
		}
		n, err := x.streamDisk(ctx, cw, file, d)
		if err != nil {
			return 0, err
		}
		chunks, err := w.EndChunked()
		for _, c := range chunks {
			x.res.Disks[i].Stored += c.Size
		}
		x.res.Disks[i].Chunks = len(chunks)
		return n, err
	})
	if err != nil {
		return err
	}
	if err := x.finishOVA(w, w.Written()); err != nil {
		return err
	}
	return bw.Flush()
}
