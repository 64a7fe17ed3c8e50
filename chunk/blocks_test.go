package chunk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"testing"
)

func TestHashVectors(t *testing.T) {
	cases := []struct {
		c    Checksum
		data []byte
		want string
	}{
		{XXHash, nil, "EF46DB3751D8E999"},
		{XXHash, make([]byte, BlockSize), "87D2A1B6E1163EF1"},
		{XXHash, []byte("abc"), "44BC2CF5AD770999"},
		{SHA1, nil, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{SHA1, make([]byte, BlockSize), "3b71f43ff30f4b15b5cd85dd9e95ebc7e84eb5a3"},
	}
	for _, c := range cases {
		if got := HashText(c.c, c.data); got != c.want {
			t.Errorf("%v of %d bytes: %s, want %s", c.c, len(c.data), got, c.want)
		}
	}
}

// memArchive collects members.
type memArchive struct{ members []Member }

func (m *memArchive) WriteMember(name string, data []byte) error {
	m.members = append(m.members, Member{Name: name, Size: int64(len(data)), R: bytes.NewReader(bytes.Clone(data))})
	return nil
}

func (m *memArchive) names() []string {
	var n []string
	for _, x := range m.members {
		n = append(n, x.Name)
	}
	return n
}

// seq replays members, re-reading their data each time.
func seq(ms []Member) iter.Seq2[Member, error] {
	return func(yield func(Member, error) bool) {
		for _, m := range ms {
			b := make([]byte, m.Size)
			m.R.(*bytes.Reader).ReadAt(b, 0)
			if !yield(Member{m.Name, m.Size, bytes.NewReader(b)}, nil) {
				return
			}
		}
	}
}

func writeBlocks(t *testing.T, b []byte, c Checksum) *memArchive {
	t.Helper()
	var m memArchive
	if _, err := WriteBlocks(context.Background(), &m, sliceFiller{b, true}, "Ref:7", int64(len(b)), BlockOptions{Checksum: c}); err != nil {
		t.Fatal(err)
	}
	return &m
}

func readBlocks(ms []Member, size int64, o BlockOptions) ([]byte, BlockStats, error) {
	out := make([]byte, size)
	st, err := ReadBlocks(context.Background(), seq(ms), "Ref:7", size, func(off int64, p []byte) error {
		copy(out[off:], p)
		return nil
	}, o)
	return out, st, err
}

func TestBlocksLayout(t *testing.T) {
	// 5 blocks and a partial sixth: data in block 2 only.
	b := make([]byte, 5*BlockSize+100)
	b[2*BlockSize+7] = 1
	m := writeBlocks(t, b, XXHash)
	want := "Ref:7/00000000 Ref:7/00000000.xxhash Ref:7/00000002 Ref:7/00000002.xxhash Ref:7/00000005 Ref:7/00000005.xxhash"
	if got := strings.Join(m.names(), " "); got != want {
		t.Fatalf("members\n%s\nwant\n%s", got, want)
	}
	if m.members[4].Size != 100 {
		t.Fatalf("last block is %d bytes, want exactly size mod 1 MiB", m.members[4].Size)
	}
	got, st, err := readBlocks(m.members, int64(len(b)), BlockOptions{})
	if err != nil || !bytes.Equal(got, b) || st.Blocks != 3 {
		t.Fatalf("read back: %v, %d blocks", err, st.Blocks)
	}
	// An all-zero disk still has its first and last blocks; a one-block
	// disk has one.
	if n := len(writeBlocks(t, make([]byte, 3*BlockSize), SHA1).members); n != 4 {
		t.Fatalf("all-zero disk: %d members", n)
	}
	if n := writeBlocks(t, make([]byte, 10), SHA1).names(); len(n) != 2 || n[1] != "Ref:7/00000000.checksum" {
		t.Fatalf("tiny disk: %v", n)
	}
}

func TestBlocksRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 512, BlockSize - 1, BlockSize, BlockSize + 1, 7*BlockSize + 333} {
		for _, c := range []Checksum{XXHash, SHA1} {
			b := testDisk(size, uint64(size))
			m := writeBlocks(t, b, c)
			got, _, err := readBlocks(m.members, int64(size), BlockOptions{Jobs: 3})
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("size %d %v: %v", size, c, err)
			}
		}
	}
}

func TestKeepAliveMembers(t *testing.T) {
	b := testDisk(4*BlockSize, 3)
	m := writeBlocks(t, b, XXHash)
	// Rebuild the stream as xapi's raw scan does after a pause: keep-alive
	// members take numbers, later blocks keep their offsets.
	var ms []Member
	w := &memArchive{}
	n := int64(0)
	for i := 0; i < len(m.members); i += 2 {
		data := m.members[i]
		buf := make([]byte, data.Size)
		data.R.(*bytes.Reader).ReadAt(buf, 0)
		if i == 2 {
			for range 2 {
				w.WriteMember(BlockName("Ref:7", n), nil)
				w.WriteMember(BlockName("Ref:7", n)+".checksum", []byte(HashText(SHA1, nil)))
				n++
			}
		}
		w.WriteMember(BlockName("Ref:7", n), buf)
		w.WriteMember(BlockName("Ref:7", n)+".xxhash", []byte(HashText(XXHash, buf)))
		n++
	}
	ms = w.members
	got, st, err := readBlocks(ms, int64(len(b)), BlockOptions{})
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("keep-alive stream: %v", err)
	}
	if st.KeepAlive != 2 || st.Checksums[SHA1] != 2 || st.Checksums[XXHash] != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBlockFaults(t *testing.T) {
	b := testDisk(4*BlockSize+10, 4)
	good := writeBlocks(t, b, XXHash).members
	clone := func() []Member {
		var c []Member
		for _, m := range good {
			buf := make([]byte, m.Size)
			m.R.(*bytes.Reader).ReadAt(buf, 0)
			c = append(c, Member{m.Name, m.Size, bytes.NewReader(buf)})
		}
		return c
	}
	setData := func(ms []Member, i int, f func([]byte) []byte) {
		buf := make([]byte, ms[i].Size)
		ms[i].R.(*bytes.Reader).ReadAt(buf, 0)
		buf = f(buf)
		ms[i] = Member{ms[i].Name, int64(len(buf)), bytes.NewReader(buf)}
	}
	cases := []struct {
		name   string
		mutate func([]Member) []Member
		want   error
		member string
	}{
		{"flipped data byte", func(ms []Member) []Member {
			setData(ms, 2, func(p []byte) []byte { p[100] ^= 1; return p })
			return ms
		}, ErrHashMismatch, "Ref:7/00000001.xxhash"},
		{"lower-case xxhash", func(ms []Member) []Member {
			setData(ms, 1, func(p []byte) []byte { return bytes.ToLower(p) })
			return ms
		}, ErrHashMismatch, "Ref:7/00000000.xxhash"},
		{"checksum not after its block", func(ms []Member) []Member {
			ms[2], ms[3] = ms[3], ms[2]
			return ms
		}, ErrNoChecksum, ""},
		{"missing last block", func(ms []Member) []Member { return ms[:len(ms)-2] }, ErrMissingBlocks, "Ref:7/00000004"},
		{"block past the end", func(ms []Member) []Member {
			setData(ms, len(ms)-2, func(p []byte) []byte { return append(p, 0) })
			return ms
		}, ErrPastEnd, "Ref:7/00000004"},
		{"numbers not increasing", func(ms []Member) []Member {
			ms[2].Name, ms[3].Name = "Ref:7/00000000", "Ref:7/00000000.xxhash"
			return ms
		}, ErrBlockOrder, "Ref:7/00000000"},
		{"numbers increasing but not as text", func(ms []Member) []Member {
			// xapi compares "02" < "1" as strings and refuses.
			ms[0].Name, ms[1].Name = "Ref:7/0", "Ref:7/0.xxhash"
			ms[2].Name, ms[3].Name = "Ref:7/1", "Ref:7/1.xxhash"
			ms[4].Name, ms[5].Name = "Ref:7/02", "Ref:7/02.xxhash"
			return ms
		}, ErrBlockOrder, "Ref:7/02"},
		{"not a number", func(ms []Member) []Member {
			ms[0].Name, ms[1].Name = "Ref:7/0x00", "Ref:7/0x00.xxhash"
			return ms
		}, ErrBlockName, "Ref:7/0x00"},
		{"past 63 bits", func(ms []Member) []Member {
			ms[0].Name, ms[1].Name = "Ref:7/9223372036854775808", "Ref:7/9223372036854775808.xxhash"
			return ms
		}, ErrBlockName, "Ref:7/9223372036854775808"},
	}
	for _, c := range cases {
		_, _, err := readBlocks(c.mutate(clone()), int64(len(b)), BlockOptions{})
		var be *MemberError
		if !errors.Is(err, c.want) || !errors.As(err, &be) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if c.member != "" && be.Member != c.member {
			t.Errorf("%s: error names %s, want %s", c.name, be.Member, c.member)
		}
	}
}

// Block names of any width read as xapi reads them: cloud-image-builder-xva
// writes 20 digits, and one digit is as good while names increase as text.
func TestBlockNameWidths(t *testing.T) {
	b := testDisk(4*BlockSize+10, 4)
	for _, format := range []string{"%d", "%020d"} {
		ms := writeBlocks(t, b, XXHash).members
		for i := range ms {
			prefix, rest, _ := strings.Cut(ms[i].Name, "/")
			digits, ext, _ := strings.Cut(rest, ".")
			n, _ := strconv.Atoi(digits)
			ms[i].Name = prefix + "/" + fmt.Sprintf(format, n)
			if ext != "" {
				ms[i].Name += "." + ext
			}
		}
		got, _, err := readBlocks(ms, int64(len(b)), BlockOptions{})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%s: disk differs", format)
		}
	}
}

func TestSalvageKeepsGoing(t *testing.T) {
	b := testDisk(3*BlockSize, 5)
	ms := writeBlocks(t, b, XXHash).members
	buf := make([]byte, ms[2].Size)
	ms[2].R.(*bytes.Reader).ReadAt(buf, 0)
	buf[0] ^= 0xff
	ms[2] = Member{ms[2].Name, ms[2].Size, bytes.NewReader(buf)}
	var bad []*MemberError
	got, _, err := readBlocks(ms, int64(len(b)), BlockOptions{OnBadBlock: func(e *MemberError) { bad = append(bad, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Member != "Ref:7/00000001.xxhash" || bad[0].Offset != BlockSize {
		t.Fatalf("bad blocks %+v", bad)
	}
	if !bytes.Equal(got[BlockSize:], append(buf, b[2*BlockSize:]...)) {
		t.Fatal("salvage did not write the damaged block's data as found")
	}
}
