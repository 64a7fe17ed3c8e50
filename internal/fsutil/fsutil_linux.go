package fsutil

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"

	"golang.org/x/sys/unix"

	"github.com/xva-tools/xva/disk"
)

// RenameNoReplace renames from to to, failing with an error satisfying
// os.ErrExist if to exists.
func RenameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No atomic no-replace rename on this filesystem. For a file, link
		// fails if to exists, which gives the same guarantee.
		if err = os.Link(from, to); err == nil {
			return os.Remove(from)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// DataExtents lists the ranges of f within [start, end) that may hold data,
// with SEEK_DATA/SEEK_HOLE; offsets are relative to start. A filesystem
// without hole support reports the whole range.
func DataExtents(ctx context.Context, f *os.File, start, end int64) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		fd, err := Fd(f)
		if err != nil {
			yield(disk.Extent{}, err)
			return
		}
		for off := start; off < end; {
			if err := ctx.Err(); err != nil {
				yield(disk.Extent{}, err)
				return
			}
			from, err := unix.Seek(fd, off, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) {
				return // only a hole remains
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				yield(disk.Extent{Off: off - start, Len: end - off}, nil)
				return
			}
			if err != nil {
				yield(disk.Extent{}, fmt.Errorf("SEEK_DATA in %s: %w", f.Name(), err))
				return
			}
			if from >= end {
				return
			}
			to, err := unix.Seek(fd, from, unix.SEEK_HOLE)
			if err != nil {
				yield(disk.Extent{}, fmt.Errorf("SEEK_HOLE in %s: %w", f.Name(), err))
				return
			}
			to = min(to, end)
			if !yield(disk.Extent{Off: from - start, Len: to - from}, nil) {
				return
			}
			off = to
		}
	}
}
