//go:build unix

package fsutil

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ONoFollow makes an open fail on a symlink; oCloexec and oNonblock as
// open(2) says.
const (
	ONoFollow = unix.O_NOFOLLOW
	oCloexec  = unix.O_CLOEXEC
	oNonblock = unix.O_NONBLOCK
)

// errLockBusy: the lock is held by another process.
var errLockBusy = unix.EWOULDBLOCK

// lockFile takes an exclusive flock on l without waiting.
func lockFile(l *os.File) error {
	return unix.Flock(int(l.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}

// renameReplace renames tmp to final, replacing a file or an empty
// directory there atomically (rename(2); os.Rename refuses a directory).
func renameReplace(tmp, final string) error {
	if err := unix.Rename(tmp, final); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: err}
	}
	return nil
}

// isInTheWay: what is at the final name cannot be replaced by the rename.
func isInTheWay(err error) bool {
	return errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTDIR)
}

// DiskUsage is the space a file occupies (its allocated blocks), which is
// less than its size for a sparse file.
func DiskUsage(st os.FileInfo) int64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int64(sys.Blocks) * 512
	}
	return st.Size()
}
