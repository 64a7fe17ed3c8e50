package xva

import (
	"errors"
	"fmt"
	"strings"
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
	// ErrBadOptions: an option is invalid (negative jobs, an unknown disk
	// format) or the options contradict each other or the output
	// (whole-archive compression of a legacy archive, say); nothing was
	// written. Every usage error wraps it: the xva command exits 2.
	ErrBadOptions = errors.New("xva: invalid options")
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
	where := Where(e.Member, e.Disk, e.Offset)
	if where == "" {
		return "corrupt archive: " + e.Err.Error()
	}
	return "corrupt archive: " + where + ": " + e.Err.Error()
}

// Where names a place in an archive: a member, and in parentheses the disk
// and the disk offset, each left out when unknown ("" and -1): "Ref:7/00000003
// (disk xvda, offset 3145728)", "sda/chunk-000000001.gz (disk sda)",
// "disk xvda, offset 0", or "" when nothing is known.
func Where(member, disk string, offset int64) string {
	var in []string
	if disk != "" {
		in = append(in, "disk "+disk)
	}
	if offset >= 0 {
		in = append(in, fmt.Sprintf("offset %d", offset))
	}
	switch {
	case member == "":
		return strings.Join(in, ", ")
	case len(in) == 0:
		return member
	}
	return member + " (" + strings.Join(in, ", ") + ")"
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
