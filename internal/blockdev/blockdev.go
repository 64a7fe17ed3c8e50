// Package blockdev writes disk data onto a medium that does not start out
// zero: a block device (through O_DIRECT, with sector-aligned buffers) or an
// existing file. Ranges the caller skips are zeroed, so the result reads
// back exactly as the disk, unless the caller says the medium is already
// zero.
//
// It may import internal/fsutil only.
package blockdev

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// stageSize is the aligned buffer writes are gathered in.
const stageSize = 4 << 20

// Target is a medium being written front to back.
type Target struct {
	f         *os.File
	path      string
	dev       bool
	base      int64 // where offset 0 lies on the medium (a window's start)
	size      int64 // bytes of the medium, or of the window
	sector    int64 // logical sector size
	prezeroed bool
	shared    bool // a window: Close leaves the file open

	stage    []byte // aligned; holds [stageOff, stageOff+len(stage))
	stageOff int64
	end      int64 // offset up to which the medium is written or zeroed
}

// Open opens path for writing: a block device with O_DIRECT, its size from
// BLKGETSIZE64 and its logical sector size from BLKSSZGET, or an existing
// regular file. With prezeroed, ranges never written are left as they are.
func Open(path string, prezeroed bool) (*Target, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	t := &Target{path: path, prezeroed: prezeroed, sector: 512}
	flags := os.O_RDWR
	if st.Mode()&os.ModeDevice != 0 {
		t.dev = true
		flags |= oDirect | oExcl
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is neither a block device nor a regular file", path)
	}
	if t.f, err = os.OpenFile(path, flags, 0); err != nil {
		return nil, err
	}
	if t.size, err = Size(t.f); err != nil {
		t.f.Close()
		return nil, err
	}
	if t.dev {
		ss, err := sectorSize(t.f)
		if err != nil {
			t.f.Close()
			return nil, err
		}
		if ss > 0 {
			t.sector = ss
		}
	}
	t.stage = aligned(stageSize)[:0]
	return t, nil
}

// Size returns the size of a file or a block device (BLKGETSIZE64).
func Size(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return st.Size(), nil
	}
	return deviceSize(f)
}

// aligned returns a buffer whose address is 4 KiB-aligned, as O_DIRECT needs.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return b[skip : skip+n : skip+n]
}

// Size is the medium's size; SectorSize its logical sector size.
func (t *Target) Size() int64       { return t.size }
func (t *Target) SectorSize() int64 { return t.sector }
func (t *Target) Path() string      { return t.path }

// Reached is the offset written (or zeroed) so far, for reporting how far a
// failed write got.
func (t *Target) Reached() int64 { return t.end }

// WriteAt writes p at off. Offsets must increase; the range between the
// previous write and off is zeroed unless the medium is prezeroed.
//
// Bytes gather in a sector-aligned stage. Invariant: when the stage is not
// empty it holds [stageOff, end), stageOff on a sector boundary.
func (t *Target) WriteAt(p []byte, off int64) (int, error) {
	if off < t.end {
		return 0, fmt.Errorf("blockdev: write at %d goes back before %d", off, t.end)
	}
	if off+int64(len(p)) > t.size {
		return 0, fmt.Errorf("blockdev: write of %d bytes at %d past the end of %s (%d bytes)", len(p), off, t.path, t.size)
	}
	if err := t.skipTo(off); err != nil {
		return 0, err
	}
	if err := t.stageBytes(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// stageBytes appends p at t.end.
func (t *Target) stageBytes(p []byte) error {
	for len(p) > 0 {
		if len(t.stage) == 0 {
			// A new stage starts on the sector boundary at or before end;
			// what lies between is zero (skipped, see skipTo).
			t.stageOff = t.end - t.end%t.sector
			t.stage = t.stage[:t.end-t.stageOff]
			clear(t.stage)
		}
		if len(t.stage) == cap(t.stage) {
			if err := t.flush(false); err != nil {
				return err
			}
			continue
		}
		c := copy(t.stage[len(t.stage):cap(t.stage)], p)
		t.stage = t.stage[:len(t.stage)+c]
		p = p[c:]
		t.end += int64(c)
	}
	return nil
}

var zeroSector = make([]byte, 64<<10)

// skipTo moves end to off, the range between reading as zeros.
func (t *Target) skipTo(off int64) error {
	if off == t.end {
		return nil
	}
	if len(t.stage) > 0 && off <= alignUp(t.end, t.sector) {
		// The gap ends inside the sector being staged: zeros go in the stage.
		return t.stageBytes(zeroSector[:off-t.end])
	}
	if len(t.stage) > 0 {
		if err := t.flush(true); err != nil { // pads the staged sector with zeros
			return err
		}
	}
	from, to := alignUp(t.end, t.sector), off-off%t.sector
	if to > from {
		if err := t.Zero(from, to-from); err != nil {
			return err
		}
	}
	// The sector holding off is zero-filled before off when staged.
	t.end = off
	return nil
}

func alignUp(n, to int64) int64 { return (n + to - 1) / to * to }

// flush writes the staged bytes. Unless all is true only whole sectors are
// written and a partial last sector stays staged; with all it is padded
// with zeros, which is right because what follows is a skipped range or the
// disk's end.
func (t *Target) flush(all bool) error {
	n := int64(len(t.stage))
	whole := n - n%t.sector
	if all {
		whole = alignUp(n, t.sector)
		t.stage = t.stage[:whole]
		clear(t.stage[n:])
	}
	if whole > 0 {
		if _, err := t.f.WriteAt(t.stage[:whole], t.base+t.stageOff); err != nil {
			return fmt.Errorf("writing %s at offset %d: %w", t.path, t.stageOff, err)
		}
	}
	rest := 0
	if !all {
		rest = copy(t.stage[:cap(t.stage)], t.stage[whole:n])
	}
	t.stage = t.stage[:rest]
	t.stageOff += whole
	return nil
}

// Zero makes [off, off+n) read as zeros, unless the medium is prezeroed:
// BLKZEROOUT on a device (the kernel uses WRITE ZEROES or unmap where it
// can), punching a hole in a file, writing zeros where neither works.
// off and n must be sector multiples.
func (t *Target) Zero(off, n int64) error {
	if t.prezeroed || n <= 0 {
		return nil
	}
	off += t.base
	if zeroFast(t.f, t.dev, off, n) {
		return nil
	}
	zeros := aligned(1 << 20)
	for n > 0 {
		c := min(n, int64(len(zeros)))
		if _, err := t.f.WriteAt(zeros[:c], off); err != nil {
			return fmt.Errorf("zeroing %s at offset %d: %w", t.path, off, err)
		}
		off, n = off+c, n-c
	}
	return nil
}

// Finish flushes what is staged, zeros up to end (the disk's size, rounded
// up to a sector), and flushes the medium to stable storage.
func (t *Target) Finish(end int64) error {
	end = min(alignUp(end, t.sector), t.size)
	if end > t.end {
		if err := t.skipTo(end); err != nil {
			return err
		}
	}
	if err := t.flush(true); err != nil {
		return err
	}
	return datasync(t.f)
}

// Close closes the medium (a window leaves it open).
func (t *Target) Close() error {
	if t.shared {
		return nil
	}
	return t.f.Close()
}

// Window returns a Target over [base, base+size) of t's medium, with
// offsets relative to base, which zeros only inside it: an LV's segment on
// its PV, where the gaps between segments hold other volumes. base and size
// must be sector multiples; windows are written one after another.
func (t *Target) Window(base, size int64) (*Target, error) {
	if base%t.sector != 0 || size%t.sector != 0 || base < 0 || base+size > t.size {
		return nil, fmt.Errorf("blockdev: window [%d, %d) of %s is not sector-aligned or not inside it", base, base+size, t.path)
	}
	w := *t
	w.base, w.size, w.shared, w.end, w.stageOff = t.base+base, size, true, 0, 0
	w.stage = aligned(stageSize)[:0]
	return &w, nil
}

// ReadAt reads the medium (through the page cache for a file; a device
// opened with O_DIRECT needs aligned reads, so this is for files only).
func (t *Target) ReadAt(p []byte, off int64) (int, error) {
	if t.dev {
		return 0, errors.New("blockdev: ReadAt on a device opened for writing")
	}
	return t.f.ReadAt(p, t.base+off)
}

var _ io.WriterAt = (*Target)(nil)

// IsDevice reports whether path is a block device.
func IsDevice(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}
