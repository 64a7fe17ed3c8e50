package xva

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/blockdev"
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

// openSource opens a disk image named by path: lvm:PV:VG/LV, a block device
// or a file; a VHD inside any of them is read as a VHD. A malformed VHD is
// an integrity failure.
func openSource(path string) (disk.Source, error) {
	if pvPath, vg, lv, ok := offlineLV(path); ok {
		vol, err := lvm.OpenVolume(pvPath, vg, lv, false)
		if err != nil {
			return nil, err
		}
		if !vhd.HasFooter(vol, vol.Size()) {
			return vol, nil
		}
		img, err := vhd.OpenReaderAt(vol, vol.Size(), path)
		if err != nil {
			vol.Close()
			return nil, vhdError(path, err)
		}
		return &closing{img, vol}, nil
	}
	if strings.HasPrefix(path, lvmPrefix) {
		return nil, fmt.Errorf("xva: %q: want lvm:PV_PATH:VG/LV", path)
	}
	if vhd.IsVHD(path) {
		img, err := vhd.Open(path)
		if err != nil {
			return nil, vhdError(path, err)
		}
		return img, nil
	}
	return raw.Open(path)
}

func vhdError(path string, err error) error {
	if errors.Is(err, vhd.ErrCorrupt) {
		return &CorruptError{Kind: KindImage, Member: path, Offset: -1, Err: err}
	}
	return err
}

// closing is a source that also closes what it was opened through.
type closing struct {
	disk.Source
	under interface{ Close() error }
}

func (c *closing) Close() error {
	c.Source.Close()
	return c.under.Close()
}

// createTarget starts the image of disk d at target (a file, a block
// device, or lvm:PV:VG/LV) in the given format.
func createTarget(target string, d *Disk, format string, prezeroed bool) (disk.Sink, error) {
	s, err := openTarget(target, d, format, prezeroed)
	if errors.Is(err, raw.ErrTooSmall) || errors.Is(err, lvm.ErrTooSmall) || errors.Is(err, vhd.ErrTooSmall) {
		err = tooSmall{err}
	}
	return s, err
}

// tooSmall is a format package's "too small" error, as ErrTooSmall.
type tooSmall struct{ err error }

func (e tooSmall) Error() string   { return e.err.Error() }
func (e tooSmall) Unwrap() []error { return []error{ErrTooSmall, e.err} }

func openTarget(target string, d *Disk, format string, prezeroed bool) (disk.Sink, error) {
	pvPath, vg, lv, offline := offlineLV(target)
	device := !offline && blockdev.IsDevice(target)
	if !offline && !device {
		return createFile(target, d.Size, format)
	}
	switch format {
	case "vhd-fixed":
		return nil, fmt.Errorf("xva: a fixed VHD goes to a file; write a dynamic VHD (--disk-format vhd) or raw onto %s", target)
	case "vhd":
		if offline {
			vol, err := lvm.OpenVolume(pvPath, vg, lv, true)
			if err != nil {
				return nil, err
			}
			return onMedium(vol, vol.Size(), d.Size, target)
		}
		f, err := os.OpenFile(target, os.O_RDWR|os.O_EXCL, 0)
		if err != nil {
			return nil, err
		}
		size, err := blockdev.Size(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		return onMedium(f, size, d.Size, target)
	}
	if offline {
		return lvm.CreateSink(pvPath, vg, lv, d.Size, prezeroed)
	}
	return raw.OpenDevice(target, d.Size, prezeroed)
}

// medium is a device or volume a VHD is written onto.
type medium interface {
	vhd.Medium
	Close() error
}

func onMedium(m medium, end, size int64, target string) (disk.Sink, error) {
	s, err := vhd.CreateOn(m, size, end)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	return &closingSink{s, m}, nil
}

// closingSink closes its medium once done.
type closingSink struct {
	disk.Sink
	m medium
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
func createFile(path string, size int64, format string) (disk.Sink, error) {
	switch format {
	case "vhd", "vhd-fixed":
		return vhd.Create(path, size, format == "vhd-fixed")
	}
	return raw.Create(path, size)
}

// createLV makes a volume for disk d in VG vg by XenServer's SR
// conventions and returns where to write it: its device node, or, without
// device-mapper, the volume on its PV.
func createLV(ctx context.Context, vg string, d *Disk, uuid string, format string) (string, error) {
	isVHD := format == "vhd"
	size := lvm.RawLVSize(d.Size)
	if isVHD {
		size = lvm.VHDLVSize(d.Size)
	}
	name := lvm.LVName(uuid, isVHD)
	if err := lvm.CreateLV(ctx, vg, name, size); err != nil {
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
