package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xva-tools/xva/disk"
)

// ImageResult is what ConvertImage and ExtractDisk wrote.
type ImageResult struct {
	Output  string  `json:"output"`
	Format  string  `json:"format"`     // the --disk-format written
	Size    int64   `json:"size_bytes"` // the disk's virtual size
	Data    int64   `json:"data_bytes"` // bytes of data written; the rest is holes
	Seconds float64 `json:"seconds"`
}

// ImageFormatOf is the image format an output name asks for by its
// extension (".qcow2", ".vmdk", ".vhd", ".raw", ...), the first row of the
// format table with that extension that writes; "" if none does.
func ImageFormatOf(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if ext == ".img" {
		return "raw"
	}
	for _, f := range imageFormats {
		if f.ext == ext && f.create != nil {
			return f.name
		}
	}
	return ""
}

// IsDiskImage reports whether path holds a disk image in a format the
// table recognises by content, other than raw (which has no signature).
func IsDiskImage(path string) bool {
	f, err := fileFormat(path)
	return err == nil && f.detect != nil
}

// IsMedium reports whether path names a block device or a logical volume
// on its PV (lvm:PV:VG/LV): a medium holding a disk image.
func IsMedium(path string) bool {
	m, err := parseMedium(path)
	return err == nil && (m.device || m.isLV())
}

// outputFormat is the format to write out in: WithDiskFormat's, or the one
// out's extension names.
// An image output must be a file: an image is written with seeks, and its
// name must not say another format.
func outputFormat(o *options, out string) (string, error) {
	if out == "-" {
		return "", fmt.Errorf("%w: an image cannot be written to standard output: name a file", ErrBadOptions)
	}
	format := o.diskFormat
	if format == "" {
		format = ImageFormatOf(out)
	}
	if format == "" {
		return "", fmt.Errorf("%w: %s names no image format by its extension: give --disk-format (%s)", ErrBadOptions, out, DiskFormatNames())
	}
	if _, err := tunedFormat(format, o.imageTuning()); err != nil {
		return "", err
	}
	return format, checkTargetName(out, format)
}

// ConvertImage writes the disk image at in (a file, a block device or
// lvm:PV:VG/LV, in any format the table reads, recognised by content) as a
// new image file at out, in the format WithDiskFormat names or, without
// it, out's extension says: one pass, reading only the source's data
// extents, with the new image appearing only when complete.
func ConvertImage(ctx context.Context, in, out string, opts ...Option) (*ImageResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	format, err := outputFormat(o, out)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	src, err := openSource(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	sink, err := createFile(out, src.Size(), format, o.imageTuning())
	if err != nil {
		return nil, imageError(out, err)
	}
	o.progress.StartDisk(filepath.Base(in), src.Size())
	r := disk.NewReaderJobs(ctx, src, o.jobs)
	var done int64
	n, err := disk.Copy(ctx, sink, r, func(off int64) { o.progress.Advance(off - done); done = off })
	r.Close()
	o.progress.EndDisk()
	if err != nil {
		sink.Abort()
		return nil, err
	}
	if err := sink.Commit(); err != nil {
		return nil, err
	}
	return &ImageResult{Output: out, Format: format, Size: src.Size(), Data: n, Seconds: time.Since(start).Seconds()}, nil
}

// ExtractDisk writes the disk of the archive at in whose device is device
// as a new image file at out, in the format WithDiskFormat names or out's
// extension says. The archive is read front to back through a Reader,
// every byte checked, and no further than the end of that disk; the image
// appears only once the disk's last chunk or block has passed its check.
func ExtractDisk(ctx context.Context, in, device, out string, opts ...Option) (*ImageResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	format, err := outputFormat(o, out)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r, err := OpenReader(in, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var devices []string
	for _, d := range r.Metadata().Disks {
		devices = append(devices, d.Device)
	}
	target := slices.Index(devices, device) // disks come in this order
	if target < 0 {
		return nil, fmt.Errorf("%w: the archive has no disk %s (it has %s)", ErrBadOptions, device, strings.Join(devices, ", "))
	}
	var sink disk.Sink
	res := &ImageResult{Output: out, Format: format}
	abort := func(err error) (*ImageResult, error) {
		if sink != nil {
			sink.Abort()
		}
		return nil, err
	}
	buf := make([]byte, 1<<20)
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) || err == nil && e.Disk != nil && slices.Index(devices, e.Disk.Device) > target {
			break // past the disk (a later disk's data, or the end): its last chunk was checked
		}
		if err != nil {
			return abort(err)
		}
		if e.Disk == nil || e.Disk.Device != device {
			continue
		}
		if sink == nil {
			if sink, err = createFile(out, e.Disk.Size, format, o.imageTuning()); err != nil {
				return nil, imageError(out, err)
			}
			res.Size = e.Disk.Size
		}
		for off := e.Offset; off < e.Offset+e.Size; {
			n, err := r.Read(buf[:min(int64(len(buf)), e.Offset+e.Size-off)])
			if n > 0 {
				if _, err := sink.WriteAt(buf[:n], off); err != nil {
					return abort(err)
				}
				off += int64(n)
				res.Data += int64(n)
			}
			if err != nil && err != io.EOF {
				return abort(err)
			}
			if err == io.EOF {
				break
			}
		}
	}
	if sink == nil { // a disk without data: an empty image of its size
		d := r.Metadata().diskByDevice(device)
		if sink, err = createFile(out, d.Size, format, o.imageTuning()); err != nil {
			return nil, imageError(out, err)
		}
		res.Size = d.Size
	}
	if err := sink.Commit(); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}
