// Package raw implements disk.Source and disk.Sink for raw images: sparse
// regular files whose holes are never read and never written.
//
// A format package: it may import disk and internal/{fsutil, blockdev},
// never another format package.
package raw

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/blockdev"
	"github.com/xva-tools/xva/internal/fsutil"
)

var (
	_ disk.Source    = (*Image)(nil)
	_ disk.Extenter  = (*Image)(nil)
	_ disk.Sink      = (*Sink)(nil)
	_ disk.Unordered = (*Sink)(nil)
)

// Image is a raw image opened for reading.
type Image struct {
	f    *os.File
	size int64
}

// Open opens a raw image for reading: a regular file, or a block device
// (whose size comes from BLKGETSIZE64; it has no holes to skip).
func Open(path string) (*Image, error) {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() && !blockdev.IsDevice(path) {
		f.Close()
		return nil, fmt.Errorf("raw: %s is neither a regular file nor a block device", path)
	}
	size, err := blockdev.Size(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Image{f: f, size: size}, nil
}

// Size implements disk.Source.
func (r *Image) Size() int64 { return r.size }

// ReadAt implements disk.Source.
func (r *Image) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

// Close implements disk.Source.
func (r *Image) Close() error { return r.f.Close() }

// Name is the file's path.
func (r *Image) Name() string { return r.f.Name() }

// Extents lists the file's data ranges with SEEK_DATA/SEEK_HOLE. On a
// filesystem without hole support the whole file is one extent.
func (r *Image) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return fsutil.DataExtents(ctx, r.f, 0, r.size)
}

// Sink writes a sparse raw image. It is created under a temporary name in the
// target's directory, sized first, and renamed to its final name by Commit.
type Sink struct {
	f     *os.File
	final string
	size  int64
	done  bool
}

// Create starts a raw image of size bytes that will appear at path on
// Commit. path must not exist.
func Create(path string, size int64) (*Sink, error) {
	if size < 0 {
		return nil, fmt.Errorf("raw: negative size %d", size)
	}
	if fsutil.Exists(path) {
		return nil, fmt.Errorf("raw: %s already exists", path)
	}
	f, err := fsutil.CreateTemp(path)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		fsutil.Discard(f)
		return nil, fmt.Errorf("raw: sizing %s: %w", path, err)
	}
	return &Sink{f: f, final: path, size: size}, nil
}

// Size implements disk.Sink.
func (s *Sink) Size() int64 { return s.size }

// WriteAt writes p at off, leaving aligned all-zero 4 KiB blocks as holes.
// The file starts empty and writes arrive in increasing order, so a skipped
// block can only be a hole, never stale data.
func (s *Sink) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("raw: write of %d bytes at %d past the image end %d", len(p), off, s.size)
	}
	err := disk.DataRuns(p, off, func(run []byte, at int64) error {
		_, err := s.f.WriteAt(run, at)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("raw: writing %s: %w", s.final, err)
	}
	return len(p), nil
}

// Unordered reports that writes may come in any order and concurrently:
// each range is written at most once into a file that started empty, so
// skipped blocks are holes whatever the order.
func (s *Sink) Unordered() bool { return true }

// Commit flushes the image to stable storage and gives it its final name.
func (s *Sink) Commit() error {
	if s.done {
		return errors.New("raw: image already committed or aborted")
	}
	s.done = true
	if err := fsutil.Publish(s.f, s.final, false); err != nil {
		return fmt.Errorf("raw: finishing %s: %w", s.final, err)
	}
	return nil
}

// Abort removes the partial image.
func (s *Sink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	fsutil.Discard(s.f)
	return nil
}

// DeviceSink writes a disk onto a block device (or an existing file used as
// one). Nothing is renamed: the data land in place, every range the disk
// does not write is zeroed unless the device is known to be zero
// (prezeroed), and Commit fdatasyncs.
type DeviceSink struct {
	t    *blockdev.Target
	size int64
	done bool
}

var (
	_ disk.Sink = (*DeviceSink)(nil)
)

// ErrTooSmall is returned when a target cannot hold the disk; nothing has
// been written then.
var ErrTooSmall = errors.New("raw: the target is smaller than the disk")

// OpenDevice opens path to receive a disk of size bytes. A target smaller
// than the disk is refused before anything is written.
func OpenDevice(path string, size int64, prezeroed bool) (*DeviceSink, error) {
	t, err := blockdev.Open(path, prezeroed)
	if err != nil {
		return nil, err
	}
	if t.Size() < size {
		t.Close()
		return nil, fmt.Errorf("%w: %s holds %d bytes, the disk needs %d; nothing was written", ErrTooSmall, path, t.Size(), size)
	}
	return &DeviceSink{t: t, size: size}, nil
}

// Size implements disk.Sink.
func (s *DeviceSink) Size() int64 { return s.size }

// WriteAt writes data; aligned all-zero 4 KiB blocks are zeroed rather
// than written, which the kernel may do without writing anything.
func (s *DeviceSink) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("raw: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	err := disk.DataRuns(p, off, func(run []byte, at int64) error {
		_, err := s.t.WriteAt(run, at)
		return err
	})
	if err != nil {
		return 0, s.failed(err)
	}
	return len(p), nil
}

func (s *DeviceSink) failed(err error) error {
	return fmt.Errorf("%w (the device %s is written up to offset %d)", err, s.t.Path(), s.t.Reached())
}

// Commit zeros what remains up to the disk's end and flushes the device.
func (s *DeviceSink) Commit() error {
	if s.done {
		return errors.New("raw: device already committed or aborted")
	}
	s.done = true
	err := s.t.Finish(s.size)
	if cerr := s.t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.failed(err)
	}
	return nil
}

// Abort closes the device. What was written stays: a device cannot be
// renamed away; Reached says how far it got.
func (s *DeviceSink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	return s.t.Close()
}

// Reached is the offset up to which the device has been written.
func (s *DeviceSink) Reached() int64 { return s.t.Reached() }
