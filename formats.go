package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/lvm"
	"github.com/xva-tools/xva/qcow2"
	"github.com/xva-tools/xva/raw"
	"github.com/xva-tools/xva/vhd"
	"github.com/xva-tools/xva/vhdx"
	"github.com/xva-tools/xva/vmdk"
)

// The table of disk image formats: the one place a format's name maps to
// its package. Formats and media are separate axes: a row says how its
// format is recognised, read and written, in a file or on a medium (a
// block device, or a logical volume on its PV; media.go), and each format
// package offers the same constructors:
//
//	Detect(r io.ReaderAt, size int64) bool           recognise by content
//	Open(path string) (*Image, error)                an image file or device
//	OpenOn(r io.ReaderAt, size int64, name string)   an image held on a medium
//	Create(path string, size int64) (*Sink, error)   a new image file
//	CreateOn(m Medium, size, end int64) (*Sink, error) an image onto a medium
//
// raw is the fallback of detection and is the medium itself on a medium.
// Detection, the extensions of a VM directory, the values of
// --disk-format and their help, the too-small errors and --create-lv's
// volumes all come from here: adding a format is its package plus a row.
var imageFormats = []imageFormat{
	{
		name: "raw", ext: ".raw",
		help:   "sparse raw image (zero runs of 4 KiB and more are holes)",
		open:   func(path string) (disk.Source, error) { return asSource(raw.Open(path)) },
		openOn: func(m disk.Source, _ string) (disk.Source, error) { return m, nil },
		create: func(path string, size int64) (disk.Sink, error) { return asSink(raw.Create(path, size)) },
		createOn: func(m *medium, size int64, prezeroed bool) (disk.Sink, error) {
			return m.rawSink(size, prezeroed)
		},
		tooSmall: raw.ErrTooSmall,
		lv:       &lvConvention{size: lvm.RawLVSize, name: func(uuid string) string { return lvm.LVName(uuid, false) }},
	},
	{
		name: "vhd", ext: ".vhd",
		help:   "dynamic VHD (all-zero 2 MiB blocks unallocated)",
		detect: vhd.Detect,
		open:   func(path string) (disk.Source, error) { return asSource(vhd.Open(path)) },
		openOn: func(m disk.Source, name string) (disk.Source, error) { return asSource(vhd.OpenOn(m, m.Size(), name)) },
		create: func(path string, size int64) (disk.Sink, error) { return asSink(vhd.Create(path, size)) },
		createOn: func(m *medium, size int64, _ bool) (disk.Sink, error) {
			return m.imageSink(func(rw rwMedium, end int64) (disk.Sink, error) { return asSink(vhd.CreateOn(rw, size, end)) })
		},
		corrupt:  vhd.ErrCorrupt,
		tooSmall: vhd.ErrTooSmall,
		// A VHD is recognised by the footer in its last sector, which a
		// disk of another format can hold too: the formats with a
		// signature at their start are tried first.
		detectLast: true,
		lv:         &lvConvention{size: lvm.VHDLVSize, name: func(uuid string) string { return lvm.LVName(uuid, true) }},
		inspect:    inspectVHD,
	},
	{
		// Read as "vhd": this row only writes.
		name: "vhd-fixed", ext: ".vhd", variantOf: "vhd",
		help:   "fixed VHD, to a file only",
		create: func(path string, size int64) (disk.Sink, error) { return asSink(vhd.CreateFixed(path, size)) },
	},
	{
		name: "vmdk", ext: ".vmdk",
		help:    "monolithicSparse VMDK (Workstation, qemu, VirtualBox), to a file only",
		detect:  vmdk.Detect,
		open:    func(path string) (disk.Source, error) { return asSource(vmdk.Open(path)) },
		openOn:  func(m disk.Source, name string) (disk.Source, error) { return asSource(vmdk.OpenOn(m, m.Size(), name)) },
		create:  func(path string, size int64) (disk.Sink, error) { return asSink(vmdk.Create(path, size)) },
		corrupt: vmdk.ErrCorrupt,
		inspect: inspectVMDK,
	},
	vmdkStreamRow(0),
	qcow2Row(),
	{
		name: "vhdx", ext: ".vhdx",
		help:    "dynamic VHDX (all-zero 32 MiB blocks unallocated), to a file only",
		detect:  vhdx.Detect,
		open:    func(path string) (disk.Source, error) { return asSource(vhdx.Open(path)) },
		openOn:  func(m disk.Source, name string) (disk.Source, error) { return asSource(vhdx.OpenOn(m, m.Size(), name)) },
		create:  func(path string, size int64) (disk.Sink, error) { return asSink(vhdx.Create(path, size)) },
		corrupt: vhdx.ErrCorrupt,
		inspect: inspectVHDX,
	},
	{
		// Read as "vhdx": this row only writes.
		name: "vhdx-fixed", ext: ".vhdx", variantOf: "vhdx",
		help:   "fixed VHDX, to a file only",
		create: func(path string, size int64) (disk.Sink, error) { return asSink(vhdx.CreateFixed(path, size)) },
	},
}

// imageFormat is a row of the format table. Only name, ext and help are
// required; a missing function means the format cannot do that.
type imageFormat struct {
	name      string // the --disk-format value
	ext       string // the file name extension in a VM directory
	help      string // a few words for --help
	variantOf string // another row that reads this format ("" for none)

	// detect recognises the format by content; nil for raw, the fallback.
	// detectLast: tried after the others (a signature at the end).
	detect     func(r io.ReaderAt, size int64) bool
	detectLast bool
	open       func(path string) (disk.Source, error)                         // a file or block device
	openOn     func(m disk.Source, name string) (disk.Source, error)          // inside a medium (an LV on its PV)
	create     func(path string, size int64) (disk.Sink, error)               // a new file
	createOn   func(m *medium, size int64, prezeroed bool) (disk.Sink, error) // onto a device or LV

	corrupt  error // the package's sentinel for a malformed image
	tooSmall error // the package's sentinel for a medium too small
	lv       *lvConvention
	inspect  func(ctx context.Context, path string) (*ImageInfo, error) // for xva info

	// tuned is the row writing with a cluster size or compression other
	// than the default; nil for a format that has neither.
	tuned func(t imageTuning) (*imageFormat, error)
}

// imageTuning is how an image is written, beyond its format: zero values
// are the format's defaults.
type imageTuning struct {
	clusterSize int64  // qcow2
	compress    string // qcow2: zlib, zstd
	jobs        int    // compressing
}

// tunedFormat is the row of a --disk-format value, set to write with t.
func tunedFormat(name string, t imageTuning) (*imageFormat, error) {
	f, ok := formatNamed(name)
	if !ok {
		return nil, fmt.Errorf("xva: unknown disk format %q (want %s)", name, DiskFormatNames())
	}
	if t.clusterSize == 0 && t.compress == "" && (f.tuned == nil || t.jobs == 0) {
		return f, nil
	}
	if f.tuned == nil {
		return nil, fmt.Errorf("%w: a %s image has no cluster size or compression to set (qcow2 has)", ErrBadOptions, f.name)
	}
	tf, err := f.tuned(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOptions, err)
	}
	return tf, nil
}

// checkTargetName refuses a target whose extension is another format's
// than the one it is to be written in (disk.qcow2 written raw), which a
// reader would take at its word.
func checkTargetName(target, format string) error {
	f, ok := formatNamed(format)
	if !ok {
		return nil // refused with the format
	}
	ext := strings.ToLower(filepath.Ext(target))
	for _, g := range imageFormats {
		if g.ext == ext && g.ext != f.ext {
			return fmt.Errorf("%w: %s is named as a %s image, but the disk format is %s: give --disk-format %s, or another name",
				ErrBadOptions, target, g.name, f.name, g.name)
		}
	}
	return nil
}

// vmdkStreamRow is the table's vmdk-stream row, compressing grains on
// jobs workers (0: one per core). It is read as "vmdk": it only writes, and
// has no cluster size or compression to set.
func vmdkStreamRow(jobs int) imageFormat {
	return imageFormat{
		name: "vmdk-stream", ext: ".vmdk", variantOf: "vmdk",
		help:   "streamOptimized VMDK (compressed, for ESXi and OVF), to a file only",
		create: func(path string, size int64) (disk.Sink, error) { return asSink(vmdk.CreateStream(path, size, jobs)) },
		tuned: func(t imageTuning) (*imageFormat, error) {
			if t.clusterSize != 0 || t.compress != "" {
				return nil, errors.New("a vmdk-stream image has no cluster size or compression to set (qcow2 has)")
			}
			r := vmdkStreamRow(t.jobs)
			return &r, nil
		},
	}
}

// qcow2Row is the table's qcow2 row, writing with opts.
func qcow2Row(opts ...qcow2.Option) imageFormat {
	return imageFormat{
		name: "qcow2", ext: ".qcow2",
		help:   "qcow2 version 3 for qemu/KVM (64 KiB clusters, all-zero clusters unallocated)",
		detect: qcow2.Detect,
		open:   func(path string) (disk.Source, error) { return asSource(qcow2.Open(path)) },
		openOn: func(m disk.Source, name string) (disk.Source, error) {
			return asSource(qcow2.OpenOn(m, m.Size(), name))
		},
		create: func(path string, size int64) (disk.Sink, error) { return asSink(qcow2.Create(path, size, opts...)) },
		createOn: func(m *medium, size int64, _ bool) (disk.Sink, error) {
			return m.imageSink(func(rw rwMedium, end int64) (disk.Sink, error) {
				return asSink(qcow2.CreateOn(rw, size, end, opts...))
			})
		},
		corrupt:  qcow2.ErrCorrupt,
		tooSmall: qcow2.ErrTooSmall,
		inspect:  inspectQcow2,
		tuned: func(t imageTuning) (*imageFormat, error) {
			var opts []qcow2.Option
			if t.clusterSize != 0 {
				opts = append(opts, qcow2.WithClusterSize(t.clusterSize))
			}
			if t.compress != "" {
				opts = append(opts, qcow2.WithCompression(t.compress, t.jobs))
			}
			// Checked here, before any output is made.
			if err := qcow2.CheckOptions(opts...); err != nil {
				return nil, err
			}
			r := qcow2Row(opts...)
			return &r, nil
		},
	}
}

// lvConvention is how a XenServer LVM SR names and sizes the volume of a
// disk in this format.
type lvConvention struct {
	size func(virtual int64) int64
	name func(vdiUUID string) string
}

// DiskFormat describes a row of the image format table, for a command's
// help and completion.
type DiskFormat struct {
	Name     string // the WithDiskFormat value
	Ext      string // the file name extension
	Help     string // what it is, in a few words
	Read     bool   // Pack reads it (recognised by content)
	Write    bool   // Unpack writes it (WithDiskFormat)
	Describe bool   // InspectImage describes it
}

// DiskFormats lists the image formats, the default first.
func DiskFormats() []DiskFormat {
	var r []DiskFormat
	for _, f := range imageFormats {
		r = append(r, DiskFormat{f.name, f.ext, f.help, f.open != nil, f.create != nil, f.inspect != nil})
	}
	return r
}

// DiskFormatNames is the values of WithDiskFormat, as "raw, vhd or vhd-fixed".
func DiskFormatNames() string {
	var names []string
	for _, f := range DiskFormats() {
		if f.Write {
			names = append(names, f.Name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// formatNamed is the row of a --disk-format value; "" is the default.
func formatNamed(name string) (*imageFormat, bool) {
	if name == "" {
		return &imageFormats[0], true
	}
	i := slices.IndexFunc(imageFormats, func(f imageFormat) bool { return f.name == name })
	if i < 0 || imageFormats[i].create == nil {
		return nil, false
	}
	return &imageFormats[i], true
}

// detectFormat is the row that reads r, size bytes long: the first whose
// content check matches, else the fallback (raw).
func detectFormat(r io.ReaderAt, size int64) *imageFormat {
	var fallback *imageFormat
	for _, last := range []bool{false, true} {
		for i := range imageFormats {
			f := &imageFormats[i]
			switch {
			case f.variantOf != "" || f.open == nil || f.detectLast != last:
			case f.detect == nil:
				if fallback == nil {
					fallback = f
				}
			case f.detect(r, size):
				return f
			}
		}
	}
	return fallback
}

// imageExts are the file name extensions an image may have in a VM
// directory, in table order, each once.
func imageExts() []string {
	var exts []string
	for _, f := range imageFormats {
		if f.open != nil && !slices.Contains(exts, f.ext) {
			exts = append(exts, f.ext)
		}
	}
	return exts
}

// imageError makes a format package's error about a malformed image a
// *CorruptError and a too-small one match ErrTooSmall.
func imageError(path string, err error) error {
	for _, f := range imageFormats {
		switch {
		case err == nil:
			return nil
		case f.corrupt != nil && errors.Is(err, f.corrupt):
			return &CorruptError{Kind: KindImage, Member: path, Offset: -1, Err: err}
		case f.tooSmall != nil && errors.Is(err, f.tooSmall):
			return tooSmall{err}
		}
	}
	if errors.Is(err, lvm.ErrTooSmall) {
		return tooSmall{err}
	}
	return err
}

// tooSmall is a format package's "too small" error, as ErrTooSmall.
type tooSmall struct{ err error }

func (e tooSmall) Error() string   { return e.err.Error() }
func (e tooSmall) Unwrap() []error { return []error{ErrTooSmall, e.err} }

// notOnMedium explains that format f writes files only.
func notOnMedium(f *imageFormat, target string) error {
	var other []string
	for _, g := range imageFormats {
		if g.createOn != nil {
			other = append(other, g.name)
		}
	}
	return fmt.Errorf("xva: a %s image goes to a file; write %s onto %s (--disk-format)", f.name, strings.Join(other, " or "), target)
}

// asSource and asSink turn a format package's constructor result into the
// interface, with no typed nil beside an error.
func asSource[T disk.Source](v T, err error) (disk.Source, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

func asSink[T disk.Sink](v T, err error) (disk.Sink, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
