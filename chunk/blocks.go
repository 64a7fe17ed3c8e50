package chunk

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/pipeline"
)

// The xapi (export_vsn 2) disk encoding: a disk is a run of members
// prefix/%08d of BlockSize bytes (the last one shorter), each followed by a
// member holding its hash; all-zero blocks are left out except the first
// and the last.
const (
	BlockSize = 1 << 20
	// maxBlock bounds a data member we accept from an archive. xapi writes
	// 1 MiB; anything far larger is not a block.
	maxBlock = 64 << 20
	maxHash  = 128
)

// Checksum is the hash kind of a checksum member.
type Checksum int

// Checksum kinds: XXH64 (written since 2019) and SHA-1 (before, still read).
const (
	XXHash Checksum = iota + 1
	SHA1
)

// Ext is the checksum member's suffix.
func (c Checksum) Ext() string {
	if c == SHA1 {
		return ".checksum"
	}
	return ".xxhash"
}

func (c Checksum) String() string {
	if c == SHA1 {
		return "sha1"
	}
	return "xxhash"
}

// ParseChecksum reads "xxhash" or "sha1".
func ParseChecksum(s string) (Checksum, error) {
	switch strings.ToLower(s) {
	case "xxhash", "xxh64", "":
		return XXHash, nil
	case "sha1", "sha-1":
		return SHA1, nil
	}
	return 0, fmt.Errorf("chunk: unknown checksum %q (want xxhash or sha1)", s)
}

// HashText is the checksum member's text as xapi writes and compares it:
// XXH64 with seed 0 as 16 uppercase hex digits of the integer, or SHA-1 as
// 40 lowercase hex digits; no newline.
func HashText(c Checksum, data []byte) string {
	if c == SHA1 {
		h := sha1.Sum(data)
		return hex.EncodeToString(h[:])
	}
	return fmt.Sprintf("%016X", xxhash.Sum64(data))
}

// BlockName is the member name of block n of the disk with prefix.
func BlockName(prefix string, n int64) string { return fmt.Sprintf("%s/%08d", prefix, n) }

// Errors of the block codec; a *MemberError says which member.
var (
	ErrHashMismatch  = errors.New("chunk: block hash mismatch")
	ErrNoChecksum    = errors.New("chunk: block is not followed by its checksum member")
	ErrBlockName     = errors.New("chunk: bad block member name")
	ErrBlockOrder    = errors.New("chunk: block numbers must increase")
	ErrPastEnd       = errors.New("chunk: block runs past the disk's end")
	ErrMissingBlocks = errors.New("chunk: disk ends early; its last block is missing")
	ErrBlockTooLarge = errors.New("chunk: block member too large")
)

// MemberError locates an error of either disk encoding: the member, and the
// disk offset of the data it holds.
type MemberError struct {
	Member string
	Offset int64 // disk offset of the block
	Err    error
}

func (e *MemberError) Error() string { return e.Member + ": " + e.Err.Error() }
func (e *MemberError) Unwrap() error { return e.Err }

// MemberWriter receives whole members.
type MemberWriter interface {
	WriteMember(name string, data []byte) error
}

// BlockOptions tunes the block codec.
type BlockOptions struct {
	Checksum Checksum // what the writer emits; default XXHash
	Jobs     int
	Progress func(n int64) // raw disk bytes handled, holes included
	// OnBadBlock, if set, is told of each block whose hash does not match,
	// and the block's data is still emitted (salvage); otherwise a
	// mismatch is a problem.
	OnBadBlock func(*MemberError)
	// OnProblem, if set, is told of each problem ReadBlocks finds (a
	// misplaced or misnamed member, a missing checksum, a bad hash, the
	// disk's end not reached) and decides: nil goes on past it, leaving
	// out the data it concerns; an error ends decoding with it. Without
	// it, the first problem ends decoding. Truncation always ends it. It
	// is called from one goroutine at a time, not always the caller's.
	OnProblem func(*MemberError) error
	// OnData, if set, is told of each data member placed, with the offset
	// BlockSeq had reached before it: a checker's view of the layout
	// (XapiMisreads).
	OnData func(name string, before, off, size int64)
	// KeepZeros makes WriteBlocks write all-zero blocks too, leaving no
	// gaps (see xapi's firstlen).
	KeepZeros bool
}

// BlockStats counts what a disk's encoding holds.
type BlockStats struct {
	Blocks    int   // data members, keep-alive ones included
	KeepAlive int   // zero-length data members
	Data      int64 // bytes in data members
	Checksums map[Checksum]int
	Verified  int64 // bytes of blocks whose hash matched
}

// WriteBlocks encodes size bytes of a disk, taken from src, as members of
// prefix. Blocks are hashed in parallel and written in order. The first and
// last blocks are always written, whatever they hold.
func WriteBlocks(ctx context.Context, w MemberWriter, src Filler, prefix string, size int64, o BlockOptions) (BlockStats, error) {
	if o.Checksum == 0 {
		o.Checksum = XXHash
	}
	st := BlockStats{Checksums: map[Checksum]int{}}
	// A zero-byte disk has no blocks at all: xapi's importer reads nothing
	// for it, so even an empty member would be taken for the next disk's.
	last := (size+BlockSize-1)/BlockSize - 1
	var skipped int64 // hole bytes not yet reported to Progress
	report := func(n int64) {
		if o.Progress != nil {
			o.Progress(n)
		}
	}
	type hashed struct {
		n       int64
		buf     []byte
		hash    string
		holes   int64 // bytes skipped before this block
		omitted bool  // all zero: not written
	}
	pool := pipeline.NewOrdered(ctx, o.Jobs, func(h *hashed) error {
		defer putBuf(h.buf)
		report(h.holes)
		if !h.omitted {
			name := BlockName(prefix, h.n)
			if err := w.WriteMember(name, h.buf); err != nil {
				return err
			}
			if err := w.WriteMember(name+o.Checksum.Ext(), []byte(h.hash)); err != nil {
				return err
			}
			st.Blocks++
			st.Data += int64(len(h.buf))
			st.Checksums[o.Checksum]++
		}
		report(int64(len(h.buf)))
		return nil
	}, func(h *hashed) { putBuf(h.buf) })

	for n := int64(0); n <= last; n++ {
		off := n * BlockSize
		blen := min(BlockSize, size-off)
		must := n == 0 || n == last
		buf := getBuf(BlockSize)[:blen]
		data, err := src.Fill(buf, off)
		if err != nil {
			putBuf(buf)
			return st, pool.Abort(err)
		}
		if !data && !must && !o.KeepZeros {
			putBuf(buf)
			skipped += blen
			continue
		}
		if !data {
			clear(buf)
		}
		holes := skipped
		skipped = 0
		err = pool.Submit(func(context.Context) (*hashed, error) {
			h := &hashed{n: n, buf: buf, holes: holes}
			if !must && !o.KeepZeros && disk.IsZero(buf) {
				h.omitted = true
			} else {
				h.hash = HashText(o.Checksum, buf)
			}
			return h, nil
		})
		if err != nil {
			putBuf(buf)
			break
		}
	}
	if err := pool.Close(); err != nil {
		return st, err
	}
	report(skipped)
	return st, nil
}

// Member is an archive member as the block reader sees it.
type Member struct {
	Name string
	Size int64
	R    io.Reader
}

// BlockSeq follows the members of one disk's block encoding in archive
// order, checking their names and placing each block on the disk. Blocks are
// placed by running offset, never by number × 1 MiB: a number skipped means
// a gap of BlockSize zero bytes, and a zero-length keep-alive member takes a
// number without moving the offset. After an error the sequence goes on
// from the member as given, so a checker can report every problem.
type BlockSeq struct {
	prefix  string
	size    int64
	pos     int64  // offset the next block starts at, before any gap
	last    int64  // number of the last data member
	lastNum string // its digits, as named: xapi compares them as strings
	pending string // data member awaiting its checksum member
	pendOff int64  // its offset
}

// NewBlockSeq starts the sequence of the disk whose members are prefix/….
func NewBlockSeq(prefix string, size int64) *BlockSeq {
	return &BlockSeq{prefix: prefix, size: size, last: -1, lastNum: "-1"}
}

// Pos is the offset up to which blocks have been placed.
func (s *BlockSeq) Pos() int64 { return s.pos }

// Data places the data member name of size bytes and returns its offset.
func (s *BlockSeq) Data(name string, size int64) (int64, error) {
	fail := func(off int64, err error) (int64, error) {
		return off, &MemberError{Member: name, Offset: off, Err: err}
	}
	if s.pending != "" {
		p := s.pending
		s.pending = ""
		return fail(s.pos, fmt.Errorf("%w (the member after %s)", ErrNoChecksum, p))
	}
	num, ext, err := parseBlockName(s.prefix, name)
	digits := strings.TrimSuffix(strings.TrimPrefix(name, s.prefix+"/"), ext)
	if err != nil {
		return fail(s.pos, err)
	}
	if ext != "" {
		return fail(s.pos, fmt.Errorf("%w: a checksum member with no block before it", ErrNoChecksum))
	}
	off := s.pos
	if num > s.last {
		off += (num - s.last - 1) * BlockSize
	}
	s.pending, s.pendOff = name, off
	var seqErr error
	switch {
	case num <= s.last:
		seqErr = fmt.Errorf("%w: %s follows %s", ErrBlockOrder, digits, s.lastNum)
	case digits <= s.lastNum:
		// xapi compares names as strings before it reads them as numbers:
		// 10 after 9 is refused, so names must be of one width.
		seqErr = fmt.Errorf("%w: %s follows %s (names must increase as text too, as xapi compares them)", ErrBlockOrder, digits, s.lastNum)
	case size > maxBlock:
		seqErr = fmt.Errorf("%w: %d bytes", ErrBlockTooLarge, size)
	case off+size > s.size:
		seqErr = fmt.Errorf("%w: bytes %d to %d of a %d-byte disk", ErrPastEnd, off, off+size, s.size)
	}
	if num > s.last && digits > s.lastNum {
		s.last, s.lastNum = num, digits
	}
	s.pos = off + size
	if seqErr != nil {
		return fail(off, seqErr)
	}
	return off, nil
}

// Checksum takes the member that follows a data member and returns its
// hash kind; it must be named after the data member.
func (s *BlockSeq) Checksum(name string) (Checksum, error) {
	p := s.pending
	s.pending = ""
	switch {
	case p != "" && name == p+XXHash.Ext():
		return XXHash, nil
	case p != "" && name == p+SHA1.Ext():
		return SHA1, nil
	case p == "":
		return 0, &MemberError{Member: name, Offset: s.pos, Err: fmt.Errorf("%w: a checksum member with no block before it", ErrNoChecksum)}
	}
	return 0, &MemberError{Member: p, Offset: s.pos, Err: ErrNoChecksum}
}

// Unpaired ends the wait for the checksum member of the data member placed
// last, which did not come (another data member, or the disk's end, came
// instead): it returns that member's error, or nil if none was waiting.
func (s *BlockSeq) Unpaired() error {
	if s.pending == "" {
		return nil
	}
	p := s.pending
	s.pending = ""
	return &MemberError{Member: p, Offset: s.pendOff, Err: ErrNoChecksum}
}

// End checks that the blocks reach the disk's end.
func (s *BlockSeq) End() error {
	if s.pending != "" {
		p := s.pending
		s.pending = ""
		return &MemberError{Member: p, Offset: s.pos, Err: ErrNoChecksum}
	}
	if s.pos != s.size {
		return &MemberError{Member: BlockName(s.prefix, s.last+1), Offset: s.pos,
			Err: fmt.Errorf("%w: blocks end at byte %d of %d", ErrMissingBlocks, s.pos, s.size)}
	}
	return nil
}

// XapiMisreads says what xapi's importer (ocaml/xapi/stream_vdi.ml,
// recv_all_vdi, xen-api e2ee48d lines 549-630) gets wrong in a data member
// of size bytes at disk offset off, which BlockSeq placed after a gap of
// gap bytes, in an archive whose very first data member had firstLen
// bytes; nil if nothing. It reads the next tar header before it skips the
// member's padding, so a member that is not whole 512-byte sectors throws
// it off; and it sizes a gap of skipped block numbers by the archive's
// first data member, so after a first member of another size than
// BlockSize a gap lands in the wrong place.
func XapiMisreads(firstLen, gap, off, size int64) []string {
	var s []string
	if size%512 != 0 {
		s = append(s, fmt.Sprintf("a %d-byte block is not whole 512-byte sectors: xapi (from 1.170) reads the next tar header inside its padding and fails (Tar.Header.Checksum_mismatch)", size))
	}
	if gap > 0 && firstLen != BlockSize {
		s = append(s, fmt.Sprintf("xapi sizes the %d skipped blocks before this one by the archive's first block (%d bytes, not %d) and would write it at byte %d instead of %d",
			gap/BlockSize, firstLen, BlockSize, off-gap+gap/BlockSize*firstLen, off))
	}
	return s
}

// IsChecksumName reports whether name is a checksum member's.
func IsChecksumName(name string) bool {
	return strings.HasSuffix(name, XXHash.Ext()) || strings.HasSuffix(name, SHA1.Ext())
}

// ReadBlocks decodes one disk from members, which yields the disk's members
// in archive order, placing them as BlockSeq does. Every block's hash is
// checked, in parallel, against the member that must follow it; data reach
// emit in order. Problems go to o.OnProblem (see BlockOptions).
func ReadBlocks(ctx context.Context, members iter.Seq2[Member, error], prefix string, size int64, emit Emit, o BlockOptions) (BlockStats, error) {
	st := BlockStats{Checksums: map[Checksum]int{}}
	problem := func(err error) error {
		var me *MemberError
		if o.OnProblem == nil || !errors.As(err, &me) {
			return err
		}
		return o.OnProblem(me)
	}
	var emitted int64 // offset up to which progress was reported
	type checked struct {
		off int64
		buf []byte
		bad *MemberError
	}
	pool := pipeline.NewOrdered(ctx, o.Jobs, func(c *checked) error {
		defer putBuf(c.buf)
		switch {
		case c.bad != nil && o.OnBadBlock != nil:
			o.OnBadBlock(c.bad) // salvage: written as found
		case c.bad != nil:
			return problem(c.bad)
		default:
			st.Verified += int64(len(c.buf))
		}
		if len(c.buf) > 0 && !disk.IsZero(c.buf) {
			if err := emit(c.off, c.buf); err != nil {
				return err
			}
		}
		if o.Progress != nil && c.off+int64(len(c.buf)) > emitted {
			end := c.off + int64(len(c.buf))
			o.Progress(end - emitted)
			emitted = end
		}
		return nil
	}, func(c *checked) { putBuf(c.buf) })

	seq := NewBlockSeq(prefix, size)
	// pending is the data member read and awaiting its checksum member;
	// its buf is nil when it was misplaced, so its data go nowhere.
	type block struct {
		name   string
		off    int64
		buf    []byte
		placed bool
	}
	var pending *block
	drop := func() {
		if pending != nil {
			putBuf(pending.buf)
			pending = nil
		}
	}
	defer drop()
	for m, err := range members {
		if err != nil {
			// What could not be read cannot be checked; a checker is
			// still told where the disk stopped.
			if o.OnProblem != nil {
				seq.Unpaired() // its checksum member was not read, not missing
				problem(seq.End())
			}
			return st, pool.Abort(err)
		}
		if IsChecksumName(m.Name) && pending != nil {
			p := pending
			pending = nil
			kind, err := seq.Checksum(m.Name)
			if err == nil {
				var text string
				if text, err = ReadHash(m, p.off); err == nil {
					st.Checksums[kind]++
					if !p.placed {
						putBuf(p.buf)
						continue
					}
					err = pool.Submit(func(context.Context) (*checked, error) {
						return &checked{off: p.off, buf: p.buf, bad: CheckHash(m.Name, p.off, kind, p.buf, text)}, nil
					})
					if err != nil {
						putBuf(p.buf)
						break
					}
					continue
				}
			}
			putBuf(p.buf)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return st, pool.Abort(err)
			}
			if err := problem(err); err != nil {
				return st, pool.Abort(err)
			}
			continue
		}
		if err := problem(seq.Unpaired()); err != nil {
			return st, pool.Abort(err)
		}
		drop()
		if IsChecksumName(m.Name) {
			err := &MemberError{Member: m.Name, Offset: seq.Pos(), Err: fmt.Errorf("%w: a checksum member with no block before it", ErrNoChecksum)}
			if err := problem(err); err != nil {
				return st, pool.Abort(err)
			}
			continue
		}
		st.Blocks++
		st.Data += m.Size
		if m.Size == 0 {
			st.KeepAlive++
		}
		before := seq.Pos()
		off, err := seq.Data(m.Name, m.Size)
		if err != nil {
			if err := problem(err); err != nil {
				return st, pool.Abort(err)
			}
		} else if o.OnData != nil {
			o.OnData(m.Name, before, off, m.Size)
		}
		if m.Size > maxBlock {
			continue // not a block (seq.Data said so); not read
		}
		buf := getBuf(int(m.Size))
		if _, err := io.ReadFull(m.R, buf); err != nil {
			putBuf(buf)
			return st, pool.Abort(&MemberError{Member: m.Name, Offset: off, Err: truncated(err)})
		}
		pending = &block{name: m.Name, off: off, buf: buf, placed: err == nil}
	}
	drop()
	if err := pool.Close(); err != nil {
		return st, err
	}
	if err := problem(seq.Unpaired()); err != nil {
		return st, err
	}
	return st, problem(seq.End())
}

// ReadHash reads the text of the checksum member cm of the block at off.
func ReadHash(cm Member, off int64) (string, error) {
	if cm.Size > maxHash {
		return "", &MemberError{Member: cm.Name, Offset: off, Err: fmt.Errorf("%w: a %d-byte checksum member", ErrBlockTooLarge, cm.Size)}
	}
	text := make([]byte, cm.Size)
	if _, err := io.ReadFull(cm.R, text); err != nil {
		return "", &MemberError{Member: cm.Name, Offset: off, Err: truncated(err)}
	}
	return string(text), nil
}

// CheckHash compares a block's hash with the text of its checksum member,
// exactly as xapi does; it returns nil when they match.
func CheckHash(member string, off int64, kind Checksum, data []byte, text string) *MemberError {
	if got := HashText(kind, data); got != text {
		return &MemberError{Member: member, Offset: off, Err: mismatch(text, got)}
	}
	return nil
}

func mismatch(want, got string) error {
	if strings.EqualFold(want, got) {
		return fmt.Errorf("%w: member says %s, data hash to %s (the case differs; xapi compares exactly)", ErrHashMismatch, want, got)
	}
	return fmt.Errorf("%w: member says %q, data hash to %s", ErrHashMismatch, want, got)
}

// parseBlockName splits prefix/DIGITS[.ext]. xapi's importer
// (ocaml/xapi/stream_vdi.ml, recv_all_vdi, at xen-api e2ee48d lines
// 566-581) takes the name's rest after the prefix and "/", requires it to
// be greater than the last one as a string, and sizes the gap by
// int_of_string of both: any number of decimal digits works, cloud image
// builders write 20. The number must fit OCaml's 63-bit int. We are
// stricter in two ways no real writer meets: names must increase as
// numbers too (where text and number disagree xapi's offset accounting
// goes wrong), and OCaml's other forms (0x, _, +) are refused.
func parseBlockName(prefix, name string) (int64, string, error) {
	rest, ok := strings.CutPrefix(name, prefix+"/")
	if !ok {
		return 0, "", fmt.Errorf("%w: not under %s/", ErrBlockName, prefix)
	}
	digits, ext, _ := strings.Cut(rest, ".")
	if ext != "" {
		ext = "." + ext
		if ext != XXHash.Ext() && ext != SHA1.Ext() {
			return 0, "", fmt.Errorf("%w: unknown suffix %s", ErrBlockName, ext)
		}
	}
	if digits == "" || len(digits) > maxNameDigits || strings.Trim(digits, "0123456789") != "" {
		return 0, "", fmt.Errorf("%w: want a decimal number after %s/", ErrBlockName, prefix)
	}
	n, err := strconv.ParseInt(digits, 10, 63)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %s is past the largest block number", ErrBlockName, digits)
	}
	return n, ext, nil
}

// maxNameDigits bounds a block name's digits: enough for any zero-padded
// 63-bit number.
const maxNameDigits = 32
