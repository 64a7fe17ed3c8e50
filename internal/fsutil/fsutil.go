// Package fsutil holds the file-system steps that make xva's outputs atomic:
// exclusive temporary files beside the target and renames that never replace.
package fsutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// TempName returns a hidden name in the directory of path, derived from it.
func TempName(path string) string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	return filepath.Join(dir, fmt.Sprintf(".%s.xva-tmp-%08x", base, rand.Uint32()))
}

// CreateTemp creates an empty file beside path, exclusively and without
// following symlinks.
func CreateTemp(path string) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(TempName(path), os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("no free temporary name next to %s", path)
}

// MkdirTemp creates an empty directory beside path.
func MkdirTemp(path string) (string, error) {
	for range 100 {
		name := TempName(path)
		err := os.Mkdir(name, 0o755)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return name, err
	}
	return "", fmt.Errorf("no free temporary name next to %s", path)
}

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

// Exists reports whether path names anything, a dangling symlink included.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Fd returns f's descriptor without switching f to blocking mode, which
// f.Fd() would do.
func Fd(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := sc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}
