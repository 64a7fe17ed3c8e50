package blockdev

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xva-tools/xva/internal/fsutil"
)

// A device is written with O_DIRECT (no page cache), and exclusively.
const (
	oDirect = unix.O_DIRECT
	oExcl   = unix.O_EXCL
)

// sectorSize is the device's logical sector size (BLKSSZGET).
func sectorSize(f *os.File) (int64, error) {
	fd, err := fsutil.Fd(f)
	if err != nil {
		return 0, err
	}
	ss, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
	if err != nil {
		return 0, fmt.Errorf("BLKSSZGET on %s: %w", f.Name(), err)
	}
	return int64(ss), nil
}

// deviceSize is the device's size (BLKGETSIZE64).
func deviceSize(f *os.File) (int64, error) {
	fd, err := fsutil.Fd(f)
	if err != nil {
		return 0, err
	}
	var n uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64 on %s: %w", f.Name(), e)
	}
	return int64(n), nil
}

// zeroFast makes [off, off+n) of f read as zeros without writing them:
// BLKZEROOUT on a device (WRITE ZEROES or unmap where the device can),
// a punched hole in a file. False when neither works.
func zeroFast(f *os.File, dev bool, off, n int64) bool {
	fd, err := fsutil.Fd(f)
	if err != nil {
		return false
	}
	if dev {
		r := [2]uint64{uint64(off), uint64(n)}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r[0])))
		return e == 0
	}
	return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil
}

// datasync flushes f's data to stable storage (fdatasync).
func datasync(f *os.File) error {
	fd, err := fsutil.Fd(f)
	if err != nil {
		return err
	}
	return unix.Fdatasync(fd)
}
