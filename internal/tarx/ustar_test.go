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

// ustarArchive writes members with USTAR headers and the end blocks.
func ustarArchive(t *testing.T, ms []member) []byte {
	t.Helper()
	var b []byte
	for _, m := range ms {
		h, err := USTARHeader(m.name, int64(len(m.data)), 1700000000)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, h[:]...)
		b = append(b, m.data...)
		b = append(b, make([]byte, pad(int64(len(m.data))))...)
	}
	return append(b, make([]byte, 2*Block)...)
}

var longName = strings.Repeat("directory/", 12) + "disk1.vmdk" // 130 bytes

func TestUSTARHeaderReadByArchiveTar(t *testing.T) {
	ms := []member{{"vm.ovf", []byte("<Envelope/>")}, {longName, bytes.Repeat([]byte{1}, 513)}}
	tr := tar.NewReader(bytes.NewReader(ustarArchive(t, ms)))
	for _, m := range ms {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Name != m.name || hdr.Format != tar.FormatUSTAR || hdr.Mode != 0o644 || hdr.Typeflag != tar.TypeReg ||
			hdr.ModTime.Unix() != 1700000000 || !bytes.Equal(data, m.data) {
			t.Fatalf("archive/tar reads %+v", hdr)
		}
	}
	// Our own reader too, prefix and all.
	got, _, err := readAll(t, ustarArchive(t, ms))
	if err != nil || len(got) != 2 || got[1].name != longName {
		t.Fatalf("tarx reads %+v, %v", got, err)
	}
}

func TestUSTARHeaderReadByGNUTar(t *testing.T) {
	testutil.NeedTools(t, "tar")
	dir := t.TempDir()
	path := filepath.Join(dir, "a.tar")
	ms := []member{{"vm.ovf", []byte("x")}, {longName, make([]byte, 1000)}}
	os.WriteFile(path, ustarArchive(t, ms), 0o644)
	out, err := exec.Command("tar", "-tvf", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvf: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "-rw-r--r-- 0/0") || !strings.HasSuffix(lines[0], " vm.ovf") ||
		!strings.Contains(lines[1], " 1000 ") || !strings.HasSuffix(lines[1], " "+longName) {
		t.Fatalf("tar -tvf:\n%s", out)
	}
}

// Sizes either side of 8 GiB: octal below, base-256 from 8 GiB on, read
// back by archive/tar from the header block alone and by our reader.
func TestUSTARHeaderLargeSizes(t *testing.T) {
	for _, size := range []int64{1<<33 - 1, 1 << 33, 1<<33 + 1, 1 << 40, maxSize} {
		h, err := USTARHeader("disk.vmdk", size, 0)
		if err != nil {
			t.Fatal(err)
		}
		if (h[124]&0x80 != 0) != (size >= 1<<33) {
			t.Fatalf("size %d: field %q", size, h[124:136])
		}
		hdr, err := tar.NewReader(bytes.NewReader(h[:])).Next()
		if err != nil || hdr.Size != size {
			t.Fatalf("size %d: archive/tar reads %v, %v", size, hdr, err)
		}
		parsed, err := parseHeader(&h)
		if err != nil || parsed.Size != size {
			t.Fatalf("size %d: tarx reads %v, %v", size, parsed, err)
		}
	}
	for _, size := range []int64{-1, maxSize + 1} {
		if _, err := USTARHeader("d", size, 0); err == nil {
			t.Fatalf("size %d accepted", size)
		}
	}
}

// GNU tar lists a member of more than 8 GiB from a sparse file, seeking
// over its data.
func TestUSTARHeaderLargeGNUTar(t *testing.T) {
	testutil.NeedTools(t, "tar")
	const size = 1<<33 + 512
	h, _ := USTARHeader("big.vmdk", size, 0)
	path := filepath.Join(t.TempDir(), "big.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(h[:])
	if err := f.Truncate(Block + size + 2*Block); err != nil {
		t.Skip("no sparse file:", err)
	}
	f.Close()
	out, err := exec.Command("tar", "-tvf", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 8589935104 ") {
		t.Fatalf("tar -tvf: %v\n%s", err, out)
	}
}

func TestUSTARHeaderNames(t *testing.T) {
	for _, name := range []string{"", "dir/", strings.Repeat("x", 101), strings.Repeat("d", 156) + "/x", "d/" + strings.Repeat("x", 101)} {
		if _, err := USTARHeader(name, 0, 0); err == nil {
			t.Fatalf("name %q accepted", name)
		}
	}
	h, err := USTARHeader(strings.Repeat("p", 155)+"/"+strings.Repeat("n", 100), 0, 0)
	if err != nil || cstr(h[345:500]) != strings.Repeat("p", 155) || cstr(h[0:100]) != strings.Repeat("n", 100) {
		t.Fatalf("longest name: %v", err)
	}
	if _, err := USTARHeader(strings.Repeat("x", 101), 0, 0); !errors.Is(err, ErrNameTooLong) {
		t.Fatal(err)
	}
}

// A PAX size too large to pad without overflow is refused, not skipped
// as if it were empty.
func TestPAXSizeOverflow(t *testing.T) {
	if _, _, err := readAll(t, special(t, typePAX, "30 size=9223372036854775807\n")); !errors.Is(err, ErrHeader) {
		t.Fatalf("PAX size 2^63-1: %v", err)
	}
}
