// Package tarx reads and writes the tar streams XVA archives are made of.
//
// The reader follows what xapi's tar reader tolerates (a stray zero block
// between headers, ustar prefixes, GNU long names, PAX headers) and reports
// each member's data offset so a seekable archive can be read in parallel.
// The writer produces the V7 headers xapi writes: mode 0400, uid/gid 0, no
// ustar magic, no directory entries.
//
// It imports nothing of the module.
package tarx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Block is the tar block size.
const Block = 512

// Errors of the tar reader. Truncation is io.ErrUnexpectedEOF.
var (
	ErrHeader   = errors.New("tarx: invalid tar header")
	ErrChecksum = errors.New("tarx: tar header checksum mismatch")
	ErrTooLarge = errors.New("tarx: tar extended header too large")
)

// Member types.
const (
	TypeReg     = '0'
	TypeRegA    = '\x00'
	TypeDir     = '5'
	typePAX     = 'x'
	typeGlobal  = 'g'
	typeGNULong = 'L'
	typeGNULink = 'K'
)

// TruncatedError reports an archive that ends inside a member's data or
// padding. It wraps io.ErrUnexpectedEOF.
type TruncatedError struct {
	Member string
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("tarx: archive ends inside member %q", e.Member)
}

func (e *TruncatedError) Unwrap() error { return io.ErrUnexpectedEOF }

// maxSize caps a member's size (4 EiB), whichever field states it.
const maxSize = 1 << 62

// maxSpecial caps PAX records and GNU long names, as archive/tar does.
const maxSpecial = 1 << 20

// Header describes one member.
type Header struct {
	Name     string
	Size     int64
	Mode     int64
	Mtime    int64
	Typeflag byte
	// Offset is the position of the member's header block in the stream and
	// DataOffset that of its data.
	Offset, DataOffset int64
}

// IsRegular reports whether the member is a regular file.
func (h *Header) IsRegular() bool { return h.Typeflag == TypeReg || h.Typeflag == TypeRegA }

// Reader reads a tar stream member by member, in the shape of archive/tar.
type Reader struct {
	r       io.Reader
	pos     int64  // bytes consumed from r
	remain  int64  // unread data bytes of the current member
	dataOff int64  // offset of the current member's data
	cur     string // name of the current member
	pad     int64  // padding after the current member
	err     error
	sawEnd  bool
	strayed int
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Pos is the number of bytes of the underlying stream consumed so far.
func (tr *Reader) Pos() int64 { return tr.pos }

// DataOffset is the offset of the current member's data.
func (tr *Reader) DataOffset() int64 { return tr.dataOff }

// SawEnd reports whether the stream ended with the two zero blocks that
// mark the end of an archive (rather than just ending).
func (tr *Reader) SawEnd() bool { return tr.sawEnd }

// StrayZeroBlocks counts single zero blocks found between headers.
func (tr *Reader) StrayZeroBlocks() int { return tr.strayed }

// Next advances to the next member, skipping what is left of the current
// one. It returns io.EOF at the end of the archive.
func (tr *Reader) Next() (*Header, error) {
	if tr.err != nil {
		return nil, tr.err
	}
	h, err := tr.next()
	if err != nil {
		tr.err = err
	}
	return h, err
}

func (tr *Reader) next() (*Header, error) {
	if err := tr.skip(tr.remain + tr.pad); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && tr.cur != "" {
			return nil, &TruncatedError{Member: tr.cur}
		}
		return nil, err
	}
	tr.remain, tr.pad = 0, 0
	var longName string
	var pax map[string]string
	for {
		start := tr.pos
		blk, err := tr.block()
		if err == io.EOF {
			return nil, io.EOF // ended at a header boundary without end blocks
		}
		if err != nil {
			return nil, err
		}
		if isZero(blk[:]) {
			next, err := tr.block()
			if err == io.EOF {
				return nil, io.EOF
			}
			if err != nil {
				return nil, err
			}
			if isZero(next[:]) {
				tr.sawEnd = true
				return nil, io.EOF
			}
			// A single stray zero block, which xapi's reader skips.
			tr.strayed++
			blk = next
			start += Block
		}
		h, err := parseHeader(&blk)
		if err != nil {
			return nil, fmt.Errorf("%w at offset %d", err, start)
		}
		h.Offset = start
		switch h.Typeflag {
		case typePAX, typeGlobal:
			rec, err := tr.special(h.Size)
			if err != nil {
				return nil, err
			}
			attrs, err := parsePAX(rec)
			if err != nil {
				return nil, fmt.Errorf("%w at offset %d", err, start)
			}
			if h.Typeflag == typePAX {
				pax = attrs
			}
			continue
		case typeGNULong:
			rec, err := tr.special(h.Size)
			if err != nil {
				return nil, err
			}
			// A C string, as GNU tar and archive/tar read it: a NUL
			// ends the name wherever it falls.
			longName, _, _ = strings.Cut(string(rec), "\x00")
			continue
		case typeGNULink:
			if _, err := tr.special(h.Size); err != nil {
				return nil, err
			}
			continue
		}
		if longName != "" {
			h.Name = longName
		}
		if p, ok := pax["path"]; ok {
			h.Name = p
		}
		if s, ok := pax["size"]; ok {
			n, err := strconv.ParseInt(s, 10, 64)
			// Capped where the base-256 size field is, so that size and
			// padding cannot overflow when the member is skipped.
			if err != nil || n < 0 || n > maxSize {
				return nil, fmt.Errorf("%w: PAX size %q at offset %d", ErrHeader, s, start)
			}
			h.Size = n
		}
		h.DataOffset = tr.pos
		tr.dataOff = tr.pos
		tr.cur = h.Name
		tr.remain = h.Size
		tr.pad = pad(h.Size)
		return h, nil
	}
}

// Read reads the current member's data.
func (tr *Reader) Read(p []byte) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	if tr.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > tr.remain {
		p = p[:tr.remain]
	}
	n, err := tr.r.Read(p)
	tr.pos += int64(n)
	tr.remain -= int64(n)
	if err == io.EOF && tr.remain > 0 {
		err = io.ErrUnexpectedEOF
		tr.err = err
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

func (tr *Reader) block() ([Block]byte, error) {
	var b [Block]byte
	n, err := io.ReadFull(tr.r, b[:])
	tr.pos += int64(n)
	if err == io.EOF {
		return b, io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return b, io.ErrUnexpectedEOF
	}
	return b, err // the reader's own error: the medium's, a decompressor's
}

func (tr *Reader) special(size int64) ([]byte, error) {
	if size > maxSpecial {
		return nil, ErrTooLarge
	}
	b := make([]byte, size+pad(size))
	n, err := io.ReadFull(tr.r, b)
	tr.pos += int64(n)
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	return b[:size], nil
}

// skip discards n bytes, seeking when the reader is a file and seeking
// works (stdin may be a pipe that claims to seek).
func (tr *Reader) skip(n int64) error {
	if n == 0 {
		return nil
	}
	// A reader that knows its size (an io.SectionReader over a file) seeks
	// for free and needs no probe to notice truncation.
	if s, ok := tr.r.(interface {
		io.Seeker
		Size() int64
	}); ok {
		end, err := s.Seek(n, io.SeekCurrent)
		if err == nil {
			if end > s.Size() {
				tr.pos += s.Size() - (end - n)
				return io.ErrUnexpectedEOF
			}
			tr.pos += n
			return nil
		}
	}
	if s, ok := tr.r.(io.Seeker); ok && n > 1 {
		if _, err := s.Seek(n-1, io.SeekCurrent); err == nil {
			tr.pos += n - 1
			// Read the last byte so a truncated archive is noticed here.
			var one [1]byte
			if _, err := io.ReadFull(tr.r, one[:]); err != nil {
				return io.ErrUnexpectedEOF
			}
			tr.pos++
			return nil
		}
	}
	m, err := io.CopyN(io.Discard, tr.r, n)
	tr.pos += m
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func pad(n int64) int64 { return -n & (Block - 1) }

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func parseHeader(b *[Block]byte) (*Header, error) {
	if err := checkSum(b); err != nil {
		return nil, err
	}
	h := &Header{Typeflag: b[156]}
	name := cstr(b[0:100])
	magic := string(b[257:263])
	if magic == "ustar\x00" || magic == "ustar " {
		if prefix := cstr(b[345:500]); prefix != "" && magic == "ustar\x00" {
			name = prefix + "/" + name
		}
	}
	h.Name = name
	var err error
	if h.Size, err = parseNumeric(b[124:136]); err != nil || h.Size < 0 {
		return nil, fmt.Errorf("%w: bad size field", ErrHeader)
	}
	if h.Mode, err = parseNumeric(b[100:108]); err != nil {
		return nil, fmt.Errorf("%w: bad mode field", ErrHeader)
	}
	if h.Mtime, err = parseNumeric(b[136:148]); err != nil {
		return nil, fmt.Errorf("%w: bad mtime field", ErrHeader)
	}
	return h, nil
}

// checkSum accepts the unsigned sum (POSIX) and the signed one some old tars
// wrote.
func checkSum(b *[Block]byte) error {
	want, err := parseNumeric(b[148:156])
	if err != nil {
		return fmt.Errorf("%w: unreadable checksum field", ErrHeader)
	}
	var unsigned, signed int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if want != unsigned && want != signed {
		return ErrChecksum
	}
	return nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseNumeric reads an octal field, or a base-256 one (high bit of the
// first byte set) as GNU tar writes for large values.
func parseNumeric(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0]&0x40 != 0 {
			return 0, ErrHeader // negative
		}
		var v int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if v > maxSize>>8 {
				return 0, ErrHeader
			}
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return 0, ErrHeader
	}
	return v, nil
}

// parsePAX reads "%d key=value\n" records.
func parsePAX(b []byte) (map[string]string, error) {
	m := map[string]string{}
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return nil, fmt.Errorf("%w: bad PAX record", ErrHeader)
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp+1 || n > len(b) || b[n-1] != '\n' {
			return nil, fmt.Errorf("%w: bad PAX record length", ErrHeader)
		}
		kv := string(b[sp+1 : n-1])
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%w: bad PAX record", ErrHeader)
		}
		// A path cannot hold a NUL; archive/tar refuses such records too.
		if (k == "path" || k == "linkpath") && strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("%w: PAX %s holds a NUL byte", ErrHeader, k)
		}
		m[k] = v
		b = b[n:]
	}
	return m, nil
}

// ValidHeader reports whether b begins with a tar header block whose
// checksum holds: a tar, whatever its members.
func ValidHeader(b []byte) bool {
	if len(b) < Block {
		return false
	}
	return checkSum((*[Block]byte)(b[:Block])) == nil
}
