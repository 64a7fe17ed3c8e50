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
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%07o\x00", sum))
	return b, nil
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
