package xva

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xva-tools/xva/chunk"
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

// Kind says what is wrong with an archive. Every *CorruptError carries
// one, set where the problem is found; verify reports it as the problem's
// kind.
type Kind string

// Kinds of corruption.
const (
	KindMetadata    Kind = "metadata"    // ova.xml missing, not first, unparsable, or contradicting the data
	KindTruncated   Kind = "truncated"   // the archive or a member ends early
	KindChecksum    Kind = "checksum"    // a gzip CRC-32 or a block hash does not match
	KindLength      Kind = "length"      // a chunk inflates to the wrong size (ISIZE included)
	KindOrder       Kind = "order"       // members or disks out of the order the format requires
	KindMissing     Kind = "missing"     // a chunk, block or disk is absent
	KindExtra       Kind = "extra"       // a member that belongs to no disk, or a duplicate
	KindName        Kind = "name"        // a malformed member name
	KindTar         Kind = "tar"         // a bad tar header, a member of the wrong type, a directory entry xapi refuses
	KindCompression Kind = "compression" // bad gzip or zstd framing, of a chunk or of the archive
	KindPastEnd     Kind = "past-end"    // data beyond the disk's declared size
	KindImport      Kind = "import"      // what a host's importer refuses or gets wrong, though xva reads it
	KindImage       Kind = "image"       // a malformed disk image (VHD) or LVM metadata, not an archive
)

// CorruptError reports an integrity failure: a bad checksum, a short or
// malformed archive, metadata that contradicts the data. It names what
// and where.
type CorruptError struct {
	Kind   Kind
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

func corrupt(kind Kind, member, disk string, off int64, format string, args ...any) error {
	return &CorruptError{Kind: kind, Member: member, Disk: disk, Offset: off, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of corruption err is, "" if it is none.
func KindOf(err error) Kind {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return ""
}

// chunkKind is the kind of a decoding error of package chunk, from its
// sentinel (chunk maps the gzip and flate readers' errors onto them), ""
// for an error that is none of them.
func chunkKind(err error) Kind {
	switch {
	case errors.Is(err, chunk.ErrChecksum), errors.Is(err, chunk.ErrHashMismatch):
		return KindChecksum
	case errors.Is(err, chunk.ErrLength), errors.Is(err, chunk.ErrTooLong), errors.Is(err, chunk.ErrTooShort):
		return KindLength
	case errors.Is(err, chunk.ErrChunkMissing), errors.Is(err, chunk.ErrMissingBlocks):
		return KindMissing
	case errors.Is(err, chunk.ErrChunkOrder), errors.Is(err, chunk.ErrBlockOrder), errors.Is(err, chunk.ErrNoChecksum):
		return KindOrder
	case errors.Is(err, chunk.ErrChunkPastEnd), errors.Is(err, chunk.ErrPastEnd):
		return KindPastEnd
	case errors.Is(err, chunk.ErrBlockName), errors.Is(err, chunk.ErrBlockTooLarge):
		return KindName
	case errors.Is(err, chunk.ErrNotGzip), errors.Is(err, chunk.ErrTrailing), errors.Is(err, chunk.ErrBadIndex),
		errors.Is(err, chunk.ErrInvalidData):
		return KindCompression
	case errors.Is(err, io.ErrUnexpectedEOF):
		return KindTruncated
	}
	return ""
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
