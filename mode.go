package xva

import (
	"os"

	"github.com/xva-tools/xva/internal/fsutil"
)

// DefaultFileMode is the permission of the files xva writes unless
// SetFileMode says otherwise: an archive or a disk image holds a VM's data
// (password hashes, keys), so only its owner may read it, as restic and
// borg do.
const DefaultFileMode = fsutil.DefaultMode

// SetFileMode sets the permission bits (at most 0777) of the files xva
// writes from now on in this process: archives, disk images and the files
// of VM and archive directories; directories get x where r is set. Like
// the umask it is process-wide; unlike it, the bits are exact. Whatever the
// mode, an output is 0600 (a directory 0700) until it is complete and
// renamed into place. Block devices and logical volumes written in place
// keep their own.
func SetFileMode(m os.FileMode) error { return fsutil.SetMode(m) }
