package xva

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrExists: the output already exists and would be overwritten.
	ErrExists = errors.New("xva: output already exists")
	// ErrUnsupported: the archive uses something xva does not implement.
	ErrUnsupported = errors.New("xva: unsupported archive")
	// ErrNotArchive: the input is not an XVA archive at all (not a tar,
	// nor a gzip or zstd stream of one, nor a directory with ova.xml).
	ErrNotArchive = errors.New("not an XVA archive")
	// ErrBadOptions: the options contradict each other or the output
	// (whole-archive compression of a legacy archive, say); nothing was
	// written.
	ErrBadOptions = errors.New("xva: incompatible options")
	// ErrTooSmall: a device or volume given as a disk's target cannot hold
	// it; nothing was written.
	ErrTooSmall = errors.New("xva: the target is smaller than the disk")
)

// CorruptError reports an integrity failure: a bad checksum, a short or
// malformed archive, metadata that contradicts the data. It names where.
type CorruptError struct {
	Member string // archive member, "" if none applies
	Disk   string // disk device, "" if none applies
	Offset int64  // disk offset, -1 if none applies
	Err    error
}

func (e *CorruptError) Error() string {
	var where string
	switch {
	case e.Member != "" && e.Offset >= 0:
		where = fmt.Sprintf("%s (disk %s, offset %d)", e.Member, e.Disk, e.Offset)
	case e.Member != "":
		where = e.Member
	case e.Disk != "" && e.Offset >= 0:
		where = fmt.Sprintf("disk %s, offset %d", e.Disk, e.Offset)
	case e.Disk != "":
		where = "disk " + e.Disk
	default:
		return "corrupt archive: " + e.Err.Error()
	}
	return "corrupt archive: " + where + ": " + e.Err.Error()
}

func (e *CorruptError) Unwrap() error { return e.Err }

// IsCorrupt reports whether err is (or wraps) an integrity failure.
func IsCorrupt(err error) bool {
	var c *CorruptError
	return errors.As(err, &c)
}

func corrupt(member, disk string, off int64, format string, args ...any) error {
	return &CorruptError{Member: member, Disk: disk, Offset: off, Err: fmt.Errorf(format, args...)}
}

// ioError marks an error of the medium (reading the archive, writing a
// disk) so that it is never mistaken for corruption of the data.
type ioError struct{ err error }

func (e ioError) Error() string { return e.err.Error() }
func (e ioError) Unwrap() error { return e.err }

// ioReader marks every read error of r except io.EOF as an ioError.
type ioReader struct {
	r interface{ Read([]byte) (int, error) }
}

func (r ioReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !isEOF(err) {
		err = ioError{err}
	}
	return n, err
}
