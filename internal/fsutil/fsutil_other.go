//go:build !linux

package fsutil

import (
	"context"
	"errors"
	"iter"
	"os"

	"github.com/xva-tools/xva/disk"
)

// RenameNoReplace renames from to to, failing with an error satisfying
// os.ErrExist if to exists. Without Linux's RENAME_NOREPLACE a file is
// linked (which fails if to exists) and its old name removed; a directory
// is renamed after checking that to does not exist, which is not atomic:
// something created at to in between is replaced if it is an empty
// directory.
func RenameNoReplace(from, to string) error {
	st, err := os.Lstat(from)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if err := os.Link(from, to); err != nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
		}
		return os.Remove(from)
	}
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrExist}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(from, to)
}

// DataExtents reports [start, end) as one extent relative to start: hole
// detection (SEEK_DATA) is used on Linux only, so elsewhere holes are read
// as zeros, which is slower but gives the same bytes.
func DataExtents(ctx context.Context, _ *os.File, start, end int64) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(disk.Extent{}, err)
			return
		}
		if end > start {
			yield(disk.Extent{Len: end - start}, nil)
		}
	}
}
