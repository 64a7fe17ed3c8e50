//go:build !linux

package blockdev

import (
	"errors"
	"os"
)

// errNoDevices: block devices are sized and written on Linux only (O_DIRECT and the
// BLK* ioctls); files work everywhere.
var errNoDevices = errors.New("block devices are not supported on this platform (Linux only); use an image file")

const (
	oDirect = 0
	oExcl   = 0
)

func sectorSize(*os.File) (int64, error) { return 0, errNoDevices }

func deviceSize(*os.File) (int64, error) { return 0, errNoDevices }

// zeroFast has no fast way here: zeros are written.
func zeroFast(*os.File, bool, int64, int64) bool { return false }

func datasync(f *os.File) error { return f.Sync() }
