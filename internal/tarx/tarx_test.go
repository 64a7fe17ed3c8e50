package tarx

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/testutil"
)

type member struct {
	name string
	data []byte
}

func writeV7(t *testing.T, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := NewWriter(&buf)
	for _, m := range ms {
		if err := tw.WriteHeader(m.name, int64(len(m.data)), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != tw.Pos() {
		t.Fatalf("Pos %d, wrote %d", tw.Pos(), buf.Len())
	}
	return buf.Bytes()
}

func readAll(t *testing.T, b []byte) ([]member, *Reader, error) {
	t.Helper()
	tr := NewReader(bytes.NewReader(b))
	var ms []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms, tr, nil
		}
		if err != nil {
			return ms, tr, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return ms, tr, err
		}
		if !bytes.Equal(b[h.DataOffset:h.DataOffset+h.Size], data) {
			t.Fatalf("%s: DataOffset %d does not point at its data", h.Name, h.DataOffset)
		}
		ms = append(ms, member{h.Name, data})
	}
}

var sample = []member{
	{"ova.xml", []byte("<value/>")},
	{"Ref:1/00000000", bytes.Repeat([]byte{7}, 1000)},
	{"Ref:1/00000000.xxhash", []byte("0123456789ABCDEF")},
	{"Ref:1/00000001", nil},
}

func TestRoundTripAndOffsets(t *testing.T) {
	b := writeV7(t, sample)
	got, tr, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sample) || !tr.SawEnd() {
		t.Fatalf("read %d members, end seen %v", len(got), tr.SawEnd())
	}
	for i := range got {
		if got[i].name != sample[i].name || !bytes.Equal(got[i].data, sample[i].data) {
			t.Fatalf("member %d: %q", i, got[i].name)
		}
	}
}

func TestV7HeaderLikeXapi(t *testing.T) {
	h, err := V7Header("ova.xml", 1234, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(h[100:108]) != "0000400\x00" || string(h[257:263]) != "\x00\x00\x00\x00\x00\x00" || h[156] != 0 {
		t.Fatalf("mode %q magic %q type %q", h[100:108], h[257:263], h[156])
	}
	if h[155] != 0 || strings.Trim(string(h[148:155]), "01234567") != "" {
		t.Fatalf("checksum field %q is not 7 octal digits + NUL", h[148:156])
	}
	// The standard library agrees on the checksum and the fields.
	hdr, err := tar.NewReader(bytes.NewReader(writeV7(t, sample))).Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "ova.xml" || hdr.Mode != 0o400 || hdr.Uid != 0 || hdr.ModTime.Unix() != 0 || hdr.Format != tar.FormatUnknown && hdr.Format&tar.FormatUSTAR != 0 {
		t.Fatalf("archive/tar reads %+v", hdr)
	}
	if _, err := V7Header(strings.Repeat("x", 101), 0, 0); !errors.Is(err, ErrNameTooLong) {
		t.Fatal("long name accepted")
	}
}

func TestGNUTarReadsOurs(t *testing.T) {
	testutil.NeedTools(t, "tar")
	path := filepath.Join(t.TempDir(), "a.tar")
	os.WriteFile(path, writeV7(t, sample), 0o644)
	out, err := exec.Command("tar", "-tvf", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvf: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(sample) || !strings.HasPrefix(lines[0], "-r-------- 0/0") || !strings.HasSuffix(lines[0], " ova.xml") {
		t.Fatalf("tar -tvf:\n%s", out)
	}
}

func TestReadsOtherWriters(t *testing.T) {
	long := strings.Repeat("d/", 60) + "file"
	for _, format := range []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755, Format: format})
		name := "dir/file"
		if format != tar.FormatUSTAR {
			name = long
		}
		tw.WriteHeader(&tar.Header{Name: name, Size: 3, Mode: 0o644, Format: format})
		tw.Write([]byte("abc"))
		tw.Close()
		got, _, err := readAll(t, buf.Bytes())
		if err != nil {
			t.Fatalf("format %v: %v", format, err)
		}
		if len(got) != 2 || got[0].name != "dir/" || got[1].name != name || string(got[1].data) != "abc" {
			t.Fatalf("format %v: %+v", format, got)
		}
	}
}

func TestStrayZeroBlock(t *testing.T) {
	b := writeV7(t, sample[:2])
	// Insert one zero block after the first member (header + 1 data block).
	i := 2 * Block
	withStray := append(append(bytes.Clone(b[:i]), make([]byte, Block)...), b[i:]...)
	got, tr, err := readAll(t, withStray)
	if err != nil || len(got) != 2 || tr.StrayZeroBlocks() != 1 {
		t.Fatalf("members %d, strays %d, err %v", len(got), tr.StrayZeroBlocks(), err)
	}
}

func TestBadInput(t *testing.T) {
	b := writeV7(t, sample)
	flip := bytes.Clone(b)
	flip[10] ^= 0x20
	if _, _, err := readAll(t, flip); !errors.Is(err, ErrChecksum) {
		t.Fatalf("flipped header byte: %v", err)
	}
	for _, cut := range []int{100, Block + 10, 2*Block + 1} {
		if _, _, err := readAll(t, b[:cut]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
	// Ending at a header boundary without end blocks is EOF, not an error,
	// but is visible through SawEnd.
	got, tr, err := readAll(t, b[:2*Block])
	if err != nil || len(got) != 1 || tr.SawEnd() {
		t.Fatalf("cut at a boundary: %d members, end %v, err %v", len(got), tr.SawEnd(), err)
	}
}

func TestTruncatedMemberIsNamed(t *testing.T) {
	b := writeV7(t, sample)
	// Cut inside the data, and inside the padding, of the second member.
	for _, cut := range []int{3*Block + 100, 3*Block + 1000, 4*Block - 1} {
		tr := NewReader(bytes.NewReader(b[:cut]))
		tr.Next()
		tr.Next()
		_, err := tr.Next()
		var te *TruncatedError
		if !errors.As(err, &te) || te.Member != "Ref:1/00000000" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
}

// special builds a stream of one special member (a GNU long name or a PAX
// header) carrying body, then a regular member "short" holding "abc".
func special(t *testing.T, typeflag byte, body string) []byte {
	t.Helper()
	hdr, err := V7Header("././@LongLink", int64(len(body)), 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr[156] = typeflag
	b := append(hdr[:], body...)
	b = append(b, make([]byte, pad(int64(len(body))))...)
	reg, _ := V7Header("short", 3, 0)
	b = append(b, reg[:]...)
	b = append(b, "abc"...)
	b = append(b, make([]byte, pad(3)+2*Block)...)
	fixChecksums(b)
	return b
}

// A NUL inside a name is where GNU tar and archive/tar end a GNU long name,
// and a PAX path holding one is refused, as archive/tar refuses it.
func TestNULInNames(t *testing.T) {
	got, _, err := readAll(t, special(t, typeGNULong, "dir/name\x00rest\x00"))
	if err != nil || len(got) != 1 || got[0].name != "dir/name" {
		t.Fatalf("GNU long name: %+v, %v", got, err)
	}
	if _, _, err := readAll(t, special(t, typePAX, "20 path=dir/na\x00me.x\n")); !errors.Is(err, ErrHeader) {
		t.Fatalf("PAX path with a NUL: %v", err)
	}
	got, _, err = readAll(t, special(t, typePAX, "19 path=dir/name.x\n"))
	if err != nil || len(got) != 1 || got[0].name != "dir/name.x" {
		t.Fatalf("PAX path: %+v, %v", got, err)
	}
}
