//go:build windows

package fsutil

import (
	"errors"
	"os"
)

// Windows has no O_NOFOLLOW, O_CLOEXEC or O_NONBLOCK: os.OpenFile opens
// handles that are not inherited, and a named pipe cannot be opened by
// path as a regular file.
const (
	ONoFollow = 0
	oCloexec  = 0
	oNonblock = 0
)

// errLockBusy: flock does not exist here, so every temporary name counts
// as held by a running process and leftovers of killed runs are left in
// place (they are hidden names; remove them by hand).
var errLockBusy = errors.New("file locks are not supported on this platform")

func lockFile(*os.File) error { return errLockBusy }

// renameReplace renames tmp to final, replacing a file there
// (MoveFileEx with MOVEFILE_REPLACE_EXISTING); a directory in the way is
// not replaced.
func renameReplace(tmp, final string) error { return os.Rename(tmp, final) }

func isInTheWay(err error) bool { return errors.Is(err, os.ErrExist) }

// DiskUsage is the file's size: its allocated size is not read here.
func DiskUsage(st os.FileInfo) int64 { return st.Size() }
