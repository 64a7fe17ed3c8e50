package xva

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/blockdev"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/lvm"
	"github.com/xva-tools/xva/raw"
	"github.com/xva-tools/xva/vhd"
)

// Where a disk image can be, besides a file: a block device (/dev/sdb,
// /dev/VG/LV), or a logical volume read and written directly on its
// physical volume, written lvm:PV_PATH:VG/LV (for offline images, rescue
// systems, or hosts without device-mapper).
const lvmPrefix = "lvm:"

// offlineLV splits lvm:PV_PATH:VG/LV.
func offlineLV(s string) (pv, vg, lv string, ok bool) {
	rest, ok := strings.CutPrefix(s, lvmPrefix)
	if !ok {
		return "", "", "", false
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return "", "", "", false
	}
	pv = rest[:i]
	vg, lv, ok = strings.Cut(rest[i+1:], "/")
	return pv, vg, lv, ok && pv != "" && vg != "" && lv != ""
}

// medium is where a disk image lives: a file, a block device (/dev/sdb,
// /dev/VG/LV), or a logical volume on its physical volume
// (lvm:PV_PATH:VG/LV). Media are the other axis of the format table
// (formats.go): every format is read and written through one of these.
type medium struct {
	path       string
	device     bool   // a block device
	pv, vg, lv string // a logical volume on its PV
}

// parseMedium says what path names.
func parseMedium(path string) (*medium, error) {
	if pv, vg, lv, ok := offlineLV(path); ok {
		return &medium{path: path, pv: pv, vg: vg, lv: lv}, nil
	}
	if strings.HasPrefix(path, lvmPrefix) {
		return nil, fmt.Errorf("xva: %q: want lvm:PV_PATH:VG/LV", path)
	}
	return &medium{path: path, device: blockdev.IsDevice(path)}, nil
}

func (m *medium) isLV() bool { return m.lv != "" }

// rwMedium is a device or volume opened for an image format that writes
// its own metadata onto it.
type rwMedium interface {
	vhd.Medium
	Close() error
}

// rawSink writes a disk's bytes as they are onto the device or volume,
// zeroing what the disk does not write unless prezeroed.
func (m *medium) rawSink(size int64, prezeroed bool) (disk.Sink, error) {
	if m.isLV() {
		return lvm.CreateSink(m.pv, m.vg, m.lv, size, prezeroed)
	}
	return raw.OpenDevice(m.path, size, prezeroed)
}

// imageSink opens the device or volume for writing and starts an image on
// it with create, which is given the medium's size; the medium is closed
// with the sink.
func (m *medium) imageSink(create func(rw rwMedium, end int64) (disk.Sink, error)) (disk.Sink, error) {
	var rw rwMedium
	var end int64
	if m.isLV() {
		vol, err := lvm.OpenVolume(m.pv, m.vg, m.lv, true)
		if err != nil {
			return nil, err
		}
		rw, end = vol, vol.Size()
	} else {
		f, err := os.OpenFile(m.path, os.O_RDWR|os.O_EXCL, 0)
		if err != nil {
			return nil, err
		}
		size, err := blockdev.Size(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		rw, end = f, size
	}
	s, err := create(rw, end)
	if err != nil {
		rw.Close()
		return nil, fmt.Errorf("%s: %w", m.path, err)
	}
	return &closingSink{s, rw}, nil
}

// openSource opens a disk image named by path: lvm:PV:VG/LV, a block device
// or a file, in the format its content says (formats.go). A malformed image
// is an integrity failure.
func openSource(path string) (disk.Source, error) {
	m, err := parseMedium(path)
	if err != nil {
		return nil, err
	}
	if m.isLV() {
		vol, err := lvm.OpenVolume(m.pv, m.vg, m.lv, false)
		if err != nil {
			return nil, err
		}
		f := detectFormat(vol, vol.Size())
		img, err := f.openOn(vol, path)
		if err != nil {
			vol.Close()
			return nil, imageError(path, err)
		}
		if img == disk.Source(vol) {
			return vol, nil
		}
		return checkedReads(f, &closing{img, vol}, path), nil
	}
	f, err := fileFormat(path)
	if err != nil {
		return nil, err
	}
	img, err := f.open(path)
	if err != nil {
		return nil, imageError(path, err)
	}
	return checkedReads(f, img, path), nil
}

// checkedReads makes a malformed image that a read finds (a compressed
// grain that does not inflate to its grain) an integrity failure, as one
// found when the image is opened is: for formats with a corrupt sentinel.
func checkedReads(f *imageFormat, img disk.Source, path string) disk.Source {
	if f.corrupt == nil {
		return img
	}
	return &imageSource{img, path}
}

// imageSource passes reads and extents through, mapping read errors with
// imageError.
type imageSource struct {
	disk.Source
	path string
}

func (s *imageSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.Source.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = imageError(s.path, err)
	}
	return n, err
}

func (s *imageSource) ParallelReads() bool { return disk.ParallelReads(s.Source) }

func (s *imageSource) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return disk.Extents(ctx, s.Source)
}

// fileFormat is the format of the file or device at path, by content.
func fileFormat(path string) (*imageFormat, error) {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd) // works for block devices too
	if err != nil {
		return nil, err
	}
	return detectFormat(f, end), nil
}

// closing is a source that also closes what it was opened through.
type closing struct {
	disk.Source
	under interface{ Close() error }
}

func (c *closing) ParallelReads() bool { return disk.ParallelReads(c.Source) }

// Extents passes on the image's extents, which the embedded interface
// alone would hide.
func (c *closing) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return disk.Extents(ctx, c.Source)
}

func (c *closing) Close() error {
	c.Source.Close()
	return c.under.Close()
}

// createTarget starts the image of disk d at target (a file, a block
// device, or lvm:PV:VG/LV) in the given format.
func createTarget(target string, d *Disk, format string, t imageTuning, prezeroed bool) (disk.Sink, error) {
	f, err := tunedFormat(format, t)
	if err != nil {
		return nil, err
	}
	m, err := parseMedium(target)
	if err != nil {
		return nil, err
	}
	if !m.isLV() && !m.device {
		s, err := f.create(target, d.Size)
		return s, imageError(target, err)
	}
	if f.createOn == nil {
		return nil, notOnMedium(f, target)
	}
	s, err := f.createOn(m, d.Size, prezeroed)
	return s, imageError(target, err)
}

// closingSink closes its medium once done.
type closingSink struct {
	disk.Sink
	m rwMedium
}

func (c *closingSink) Commit() error {
	err := c.Sink.Commit()
	if cerr := c.m.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *closingSink) Abort() error {
	c.Sink.Abort()
	return c.m.Close()
}

// createFile starts an image file at path, which must not exist.
func createFile(path string, size int64, format string, t imageTuning) (disk.Sink, error) {
	f, err := tunedFormat(format, t)
	if err != nil {
		return nil, err
	}
	return f.create(path, size)
}

// createLV makes a volume for disk d in VG vg by XenServer's SR
// conventions for the format and returns where to write it: its device
// node, or, without device-mapper, the volume on its PV.
func createLV(ctx context.Context, vg string, d *Disk, uuid string, format string) (string, error) {
	f, ok := formatNamed(format)
	if !ok {
		return "", fmt.Errorf("xva: unknown disk format %q (want %s)", format, DiskFormatNames())
	}
	if f.lv == nil {
		return "", fmt.Errorf("xva: an LVM SR holds no %s images; write raw or vhd into the volumes --create-lv makes", f.name)
	}
	name := f.lv.name(uuid)
	if err := lvm.CreateLV(ctx, vg, name, f.lv.size(d.Size)); err != nil {
		return "", err
	}
	dev, err := lvm.Activate(ctx, vg, name)
	if err != nil {
		return "", err
	}
	if dev != "" {
		return dev, nil
	}
	pv, err := lvm.PVOf(ctx, vg, name)
	if err != nil {
		return "", err
	}
	return lvmPrefix + pv + ":" + vg + "/" + name, nil
}

// vdiUUID is the disk's VDI uuid in an xapi archive, or a new one.
func (m *Metadata) vdiUUID(d *Disk) string {
	if m.Export != nil {
		if o := m.Export.Object(d.VDI); o != nil {
			if u := o.Str("uuid"); safeName(u) && u != "" {
				return u
			}
		}
	}
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
