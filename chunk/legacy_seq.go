package chunk

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Errors of the legacy chunk sequence; a *MemberError says which member.
var (
	ErrChunkOrder   = errors.New("chunk: chunk names must increase")
	ErrChunkMissing = errors.New("chunk: chunk missing")
	ErrChunkPastEnd = errors.New("chunk: chunk lies past the disk's declared size")
)

// LegacySeq follows the chunks of one legacy disk in archive order: every
// chunk but the last holds exactly ChunkSize bytes, the last the rest of the
// disk; names must increase; a gap in numbered names is reported as the
// missing member. After an error it goes on from the chunk as given, so a
// checker can report every problem.
type LegacySeq struct {
	prefix string
	size   int64
	k      int64
	last   string
}

// NewLegacySeq starts the sequence of the disk whose chunks are prefix/….
func NewLegacySeq(prefix string, size int64) *LegacySeq {
	return &LegacySeq{prefix: prefix, size: size}
}

// Add places the chunk called name and returns its offset and the exact
// number of bytes it must inflate to.
func (s *LegacySeq) Add(name string) (start, want int64, err error) {
	suffix := strings.TrimPrefix(name, s.prefix+"/")
	start = s.k * ChunkSize
	want = max(min(ChunkSize, s.size-start), 0)
	defer func() { s.k++; s.last = suffix }()
	fail := func(member string, err error) (int64, int64, error) {
		return start, want, &MemberError{Member: member, Offset: start, Err: err}
	}
	if s.k > 0 && suffix <= s.last {
		return fail(name, fmt.Errorf("%w, and it follows %s/%s "+
			"(an archive made with tar(1) needs tar --sort=name)", ErrChunkOrder, s.prefix, s.last))
	}
	if missing, ok := missingChunk(s.prefix, s.last, suffix, s.k); ok {
		return fail(missing, fmt.Errorf("%w (the next one is %s)", ErrChunkMissing, name))
	}
	if start >= s.size && !(s.k == 0 && s.size == 0) {
		return fail(name, fmt.Errorf("%w of %d bytes", ErrChunkPastEnd, s.size))
	}
	return start, want, nil
}

// End checks that the chunks cover the declared size.
func (s *LegacySeq) End() error {
	held := min(s.k*ChunkSize, s.size)
	if held == s.size && (s.k > 0 || s.size == 0) {
		return nil
	}
	next := fmt.Sprintf("%s/chunk-%09d.gz", s.prefix, s.k)
	if n, ok := nextChunkName(s.prefix, s.last); ok && s.k > 0 {
		next = n
	}
	return &MemberError{Member: next, Offset: held,
		Err: fmt.Errorf("%w: the chunks hold %d bytes, ova.xml declares %d", ErrChunkMissing, held, s.size)}
}

// numbered splits chunk names like "chunk-000000003.gz" and
// "chunk000000003.gz" into stem, digits and extension.
var numbered = regexp.MustCompile(`^(.*?)([0-9]+)(\.gz)?$`)

// nextChunkName returns the name that would follow last in its numbering.
func nextChunkName(prefix, last string) (string, bool) {
	m := numbered.FindStringSubmatch(last)
	if m == nil {
		return "", false
	}
	n, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return "", false
	}
	return fmt.Sprintf("%s/%s%0*d%s", prefix, m[1], len(m[2]), n+1, m[3]), true
}

// missingChunk reports the member missing before suffix: chunk 0 when the
// first chunk is numbered above zero (every known producer, xapi's CLI,
// split -d and rBuilder, counts from zero), or the one skipped when last and
// suffix are numbered alike and the numbers jump.
func missingChunk(prefix, last, suffix string, k int64) (string, bool) {
	ms := numbered.FindStringSubmatch(suffix)
	if ms == nil {
		return "", false
	}
	if k == 0 {
		if strings.Trim(ms[2], "0") != "" {
			return fmt.Sprintf("%s/%s%0*d%s", prefix, ms[1], len(ms[2]), 0, ms[3]), true
		}
		return "", false
	}
	ml := numbered.FindStringSubmatch(last)
	if ml == nil || ml[1] != ms[1] || len(ml[2]) != len(ms[2]) || ml[3] != ms[3] {
		return "", false
	}
	want, ok := nextChunkName(prefix, last)
	if ok && want != prefix+"/"+suffix {
		return want, true
	}
	return "", false
}
