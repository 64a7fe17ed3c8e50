package lvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/blockdev"
	"github.com/xva-tools/xva/internal/fsutil"
)

var (
	_ disk.Source = (*Volume)(nil)
	_ disk.Sink   = (*VolumeSink)(nil)
)

// ReadPVFile reads the LVM2 metadata of the PV at path (a block device or
// an image file).
func ReadPVFile(path string) (*PV, error) {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return nil, err
	}
	pv, err := ReadPV(f, size)
	if err != nil {
		return nil, &os.PathError{Op: "reading the LVM2 metadata of", Path: path, Err: err}
	}
	return pv, nil
}

// locate reads the PV at path and maps VG/LV onto it; the LV must lie
// wholly on this PV.
func locate(pvPath, vgName, lvName string) (*PV, *LV, []Piece, error) {
	pv, err := ReadPVFile(pvPath)
	if err != nil {
		return nil, nil, nil, err
	}
	vg := pv.VG
	if vg.Name != vgName {
		return nil, nil, nil, fmt.Errorf("lvm: %s belongs to VG %s, not %s", pvPath, vg.Name, vgName)
	}
	lv := vg.LV(lvName)
	if lv == nil {
		var names []string
		for _, l := range vg.LVs {
			names = append(names, l.Name)
		}
		return nil, nil, nil, fmt.Errorf("lvm: VG %s has no LV %s (it has %s)", vgName, lvName, strings.Join(names, ", "))
	}
	pieces, err := vg.Map(lv)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, p := range pieces {
		if info := vg.PV(p.PV); info.UUID() != pv.UUID {
			return nil, nil, nil, fmt.Errorf("lvm: LV %s/%s has extents on %s (%s, last seen as %s), not only on %s",
				vgName, lvName, p.PV, info.ID, info.Device, pvPath)
		}
	}
	return pv, lv, pieces, nil
}

// Volume is a logical volume read (and, opened for writing, written at
// random, as a VHD writer does) directly on its PV.
type Volume struct {
	f      *os.File
	pieces []Piece
	size   int64
}

// OpenVolume opens LV vgName/lvName on the PV at pvPath.
func OpenVolume(pvPath, vgName, lvName string, writable bool) (*Volume, error) {
	pv, lv, pieces, err := locate(pvPath, vgName, lvName)
	if err != nil {
		return nil, err
	}
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(pvPath, flag, 0)
	if err != nil {
		return nil, err
	}
	return &Volume{f: f, pieces: pieces, size: pv.VG.Size(lv)}, nil
}

// Size implements disk.Source.
func (v *Volume) Size() int64 { return v.size }

// Close implements disk.Source.
func (v *Volume) Close() error { return v.f.Close() }

// ReadAt implements disk.Source through the segment map.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	return v.through(p, off, v.f.ReadAt)
}

// WriteAt writes through the segment map.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	return v.through(p, off, v.f.WriteAt)
}

// Sync flushes the PV to stable storage.
func (v *Volume) Sync() error { return v.f.Sync() }

func (v *Volume) through(p []byte, off int64, io_ func([]byte, int64) (int, error)) (int, error) {
	if off >= v.size {
		return 0, io.EOF
	}
	done := 0
	for _, pc := range v.pieces {
		if len(p) == 0 {
			break
		}
		if off >= pc.LVOff+pc.Len || off < pc.LVOff {
			continue
		}
		n := min(int64(len(p)), pc.LVOff+pc.Len-off)
		if _, err := io_(p[:n], pc.PVOff+off-pc.LVOff); err != nil {
			return done, err
		}
		p, off, done = p[n:], off+n, done+int(n)
	}
	if len(p) > 0 {
		return done, io.EOF
	}
	return done, nil
}

// Extents implements disk.Extenter: a volume has no holes to skip.
func (v *Volume) Extents(context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) { yield(disk.Extent{Len: v.size}, nil) }
}

// ErrTooSmall: the volume cannot hold the disk; nothing was written.
var ErrTooSmall = errors.New("lvm: the logical volume is smaller than the disk")

// VolumeSink writes a disk onto a logical volume directly on its PV. Each
// segment is a window of the PV, so zeroing a skipped range never touches
// the other volumes between segments.
type VolumeSink struct {
	t       *blockdev.Target
	pieces  []Piece
	windows []*blockdev.Target
	size    int64
	done    bool
}

// CreateSink opens LV vgName/lvName on the PV at pvPath to receive a disk
// of size bytes. A volume smaller than the disk is refused before anything
// is written. Unless prezeroed, every byte of the disk not written is
// zeroed: LVM does not zero volumes.
func CreateSink(pvPath, vgName, lvName string, size int64, prezeroed bool) (*VolumeSink, error) {
	pv, lv, pieces, err := locate(pvPath, vgName, lvName)
	if err != nil {
		return nil, err
	}
	if lvSize := pv.VG.Size(lv); lvSize < size {
		return nil, fmt.Errorf("%w: %s/%s holds %d bytes, the disk needs %d", ErrTooSmall, vgName, lvName, lvSize, size)
	}
	t, err := blockdev.Open(pvPath, prezeroed)
	if err != nil {
		return nil, err
	}
	s := &VolumeSink{t: t, pieces: pieces, size: size, windows: make([]*blockdev.Target, len(pieces))}
	for i, pc := range pieces {
		if s.windows[i], err = t.Window(pc.PVOff, pc.Len); err != nil {
			t.Close()
			return nil, err
		}
	}
	return s, nil
}

// Size implements disk.Sink.
func (s *VolumeSink) Size() int64 { return s.size }

// WriteAt implements disk.Sink.
func (s *VolumeSink) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("lvm: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	n := len(p)
	err := disk.DataRuns(p, off, func(run []byte, at int64) error {
		for len(run) > 0 {
			i := s.piece(at)
			pc := s.pieces[i]
			c := min(int64(len(run)), pc.LVOff+pc.Len-at)
			if _, err := s.windows[i].WriteAt(run[:c], at-pc.LVOff); err != nil {
				return err
			}
			run, at = run[c:], at+c
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *VolumeSink) piece(off int64) int {
	for i, pc := range s.pieces {
		if off < pc.LVOff+pc.Len {
			return i
		}
	}
	return len(s.pieces) - 1
}

// Commit zeros what the disk did not write, segment by segment up to the
// disk's end, and flushes the PV.
func (s *VolumeSink) Commit() error {
	if s.done {
		return errors.New("lvm: volume already committed or aborted")
	}
	s.done = true
	defer s.t.Close()
	for i, pc := range s.pieces {
		if pc.LVOff >= s.size {
			break
		}
		if err := s.windows[i].Finish(min(pc.Len, s.size-pc.LVOff)); err != nil {
			return err
		}
	}
	return nil
}

// Abort stops; what was written stays on the volume.
func (s *VolumeSink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	return s.t.Close()
}
