package tarx

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors of the tar writer.
var (
	ErrNameTooLong   = errors.New("tarx: member name longer than 100 bytes")
	ErrWriteTooLong  = errors.New("tarx: write past the member's declared size")
	ErrShortMember   = errors.New("tarx: member shorter than its declared size")
	ErrWriteAfterEnd = errors.New("tarx: write after Close")
)

// V7Header returns the 512-byte V7 header xapi writes for a regular file:
// mode 0400, uid and gid 0, no ustar magic, typeflag NUL, the checksum as
// seven octal digits and a NUL.
func V7Header(name string, size, mtime int64) ([Block]byte, error) {
	var b [Block]byte
	if len(name) > 100 {
		return b, fmt.Errorf("%w: %q", ErrNameTooLong, name)
	}
	if name == "" || strings.HasSuffix(name, "/") {
		// tar and archive/tar take a V7 name ending in / for a directory
		return b, fmt.Errorf("tarx: %q cannot name a regular file", name)
	}
	if size < 0 || size >= 1<<33 {
		return b, fmt.Errorf("tarx: member size %d does not fit a V7 header", size)
	}
	copy(b[0:100], name)
	copy(b[100:108], "0000400\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", mtime))
	b[156] = TypeRegA
	copy(b[148:156], fmt.Sprintf("%07o\x00", headerSum(&b)))
	return b, nil
}

// maxOctalSize is the first size the 11 octal digits of a size field
// cannot hold: 8 GiB.
const maxOctalSize = 1 << 33

// USTARHeader returns a POSIX ustar header for a regular file, as OVA
// packages want them (DSP0243 asks for ustar): mode 0644, uid and gid 0,
// empty user and group names, typeflag '0'. A name longer than 100 bytes
// is split at a '/' into the prefix field. A size of 8 GiB or more is
// written in the base-256 form GNU tar introduced, which GNU tar, bsdtar,
// Python's tarfile and archive/tar read; ustar alone has no way to say it.
func USTARHeader(name string, size, mtime int64) ([Block]byte, error) {
	var b [Block]byte
	if name == "" || strings.HasSuffix(name, "/") {
		return b, fmt.Errorf("tarx: %q cannot name a regular file", name)
	}
	prefix, base, err := splitUSTARName(name)
	if err != nil {
		return b, err
	}
	if size < 0 || size > maxSize {
		return b, fmt.Errorf("tarx: member size %d out of range", size)
	}
	if mtime < 0 || mtime >= maxOctalSize {
		return b, fmt.Errorf("tarx: modification time %d does not fit a ustar header", mtime)
	}
	copy(b[0:100], base)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	putSize(b[124:136], size)
	copy(b[136:148], fmt.Sprintf("%011o\x00", mtime))
	b[156] = TypeReg
	copy(b[257:265], "ustar\x0000")
	copy(b[329:337], "0000000\x00")
	copy(b[337:345], "0000000\x00")
	copy(b[345:500], prefix)
	// Six digits, NUL, space: the form GNU tar and archive/tar write.
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", headerSum(&b)))
	return b, nil
}

// splitUSTARName fits name into the 100-byte name field, or the 155-byte
// prefix and the name field joined by a '/' that neither holds.
func splitUSTARName(name string) (prefix, base string, err error) {
	if len(name) <= 100 {
		return "", name, nil
	}
	// The rightmost '/' that leaves a prefix of at most 155 bytes, so
	// the name part is as short as it can be.
	for i := min(len(name)-1, 155); i > 0; i-- {
		if name[i] == '/' && len(name)-i-1 <= 100 && len(name)-i-1 > 0 {
			return name[:i], name[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("%w (and cannot be split into a ustar prefix): %q", ErrNameTooLong, name)
}

// putSize writes size as 11 octal digits and a NUL, or below 8 GiB's
// reach as base-256: the first byte 0x80, then the value big-endian.
func putSize(f []byte, size int64) {
	if size < maxOctalSize {
		copy(f, fmt.Sprintf("%011o\x00", size))
		return
	}
	for i := len(f) - 1; i > 0; i-- {
		f[i] = byte(size)
		size >>= 8
	}
	f[0] = 0x80
}

// headerSum is the unsigned sum of the header with the checksum field
// counted as spaces.
func headerSum(b *[Block]byte) int64 {
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum
}

// Writer writes a tar stream of V7 members.
type Writer struct {
	w      io.Writer
	pos    int64
	remain int64
	pad    int64
	err    error
	closed bool
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Pos is the number of bytes written to the underlying writer.
func (tw *Writer) Pos() int64 { return tw.pos }

// WriteHeader starts a member of size bytes. The previous member must have
// been written in full.
func (tw *Writer) WriteHeader(name string, size, mtime int64) error {
	if err := tw.finish(); err != nil {
		return err
	}
	h, err := V7Header(name, size, mtime)
	if err != nil {
		return err
	}
	if err := tw.raw(h[:]); err != nil {
		return err
	}
	tw.remain, tw.pad = size, pad(size)
	return nil
}

// Write writes data of the current member.
func (tw *Writer) Write(p []byte) (int, error) {
	if tw.err != nil {
		return 0, tw.err
	}
	if int64(len(p)) > tw.remain {
		return 0, ErrWriteTooLong
	}
	n, err := tw.w.Write(p)
	tw.pos += int64(n)
	tw.remain -= int64(n)
	if err != nil {
		tw.err = err
	}
	return n, err
}

// Skip accounts for n data bytes of the current member that the caller wrote
// to the underlying writer itself (for example with WriteAt on a file).
func (tw *Writer) Skip(n int64) error {
	if n > tw.remain {
		return ErrWriteTooLong
	}
	tw.remain -= n
	tw.pos += n
	return nil
}

// Close ends the archive with two zero blocks. It does not close the
// underlying writer.
func (tw *Writer) Close() error {
	if tw.closed {
		return tw.err
	}
	if err := tw.finish(); err != nil {
		return err
	}
	tw.closed = true
	return tw.raw(make([]byte, 2*Block))
}

func (tw *Writer) finish() error {
	if tw.err != nil {
		return tw.err
	}
	if tw.closed {
		return ErrWriteAfterEnd
	}
	if tw.remain > 0 {
		tw.err = ErrShortMember
		return tw.err
	}
	if tw.pad > 0 {
		p := tw.pad
		tw.pad = 0
		return tw.raw(make([]byte, p))
	}
	return nil
}

func (tw *Writer) raw(p []byte) error {
	n, err := tw.w.Write(p)
	tw.pos += int64(n)
	if err != nil {
		tw.err = err
	}
	return err
}
