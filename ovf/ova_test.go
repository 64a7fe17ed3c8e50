package ovf

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
	"github.com/xva-tools/xva/internal/tarx"
	"github.com/xva-tools/xva/internal/testutil"
)

const testOVF = `<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>`

func testBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeTestTree writes files under dir, making directories as needed.
func writeTestTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// gnuTar archives names of dir, in that order, with GNU tar.
func gnuTar(t *testing.T, dir, format string, names ...string) string {
	t.Helper()
	testutil.NeedTools(t, "tar")
	out := filepath.Join(t.TempDir(), "p.ova")
	args := append([]string{"--format=" + format, "-cf", out, "-C", dir}, names...)
	if b, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar %v: %v\n%s", args, err, b)
	}
	return out
}

// stdTar writes members with archive/tar, for shapes GNU tar will not make.
func stdTar(t *testing.T, members ...string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range members {
		data := []byte("data of " + name)
		if strings.HasSuffix(name, ".ovf") {
			data = []byte(testOVF)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o644, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	return writeTempOVA(t, buf.Bytes())
}

func writeTempOVA(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.ova")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustOpenPackage(t *testing.T, path string) *Package {
	t.Helper()
	p, err := OpenPackage(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func openPackageErr(t *testing.T, path string, want string) {
	t.Helper()
	p, err := OpenPackage(path)
	if err == nil {
		p.Close()
		t.Fatalf("opened; want an error holding %q", want)
	}
	if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "ovf: ") {
		t.Fatalf("error %q; want one holding %q", err, want)
	}
}

func memberNames(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, " ")
}

func readMember(t *testing.T, p *Package, name string) []byte {
	t.Helper()
	r, size, err := p.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("%s: %d bytes of %d, %v", name, len(b), size, err)
	}
	return b
}

// checkPackageNotes fails unless the notes hold each of want, and no others.
func checkPackageNotes(t *testing.T, p *Package, want ...string) {
	t.Helper()
	got := p.Notes()
	if len(got) != len(want) {
		t.Fatalf("notes %q, want %q", got, want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("notes %q, want %q", got, want)
		}
	}
}

var writerSizes = []int{0, 1, 511, 512, 513, 3 << 20}

// An OVA written with Add and Begin/End: GNU tar lists and extracts it
// exactly, the digests match sha256sum, and our reader reads it back.
func TestOVAWriterPatched(t *testing.T) {
	testutil.NeedTools(t, "tar", "sha256sum")
	path := filepath.Join(t.TempDir(), "out.ova")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f)
	w.Hash = sha256.New
	w.ModTime = 1700000000
	if !w.CanPatch() {
		t.Fatal("a regular file cannot patch")
	}
	want := map[string][]byte{"vm.ovf": []byte(testOVF)}
	order := []string{"vm.ovf"}
	if err := w.Add("vm.ovf", want["vm.ovf"]); err != nil {
		t.Fatal(err)
	}
	for i, n := range writerSizes {
		name := fmt.Sprintf("disk%d.vmdk", i)
		data := testBytes(n, uint64(i))
		mw, err := w.Begin(name)
		if err != nil {
			t.Fatal(err)
		}
		// Odd write sizes, so that nothing lines up with blocks.
		for rest := data; len(rest) > 0; {
			k := min(len(rest), 1000+i)
			mw.Write(rest[:k])
			rest = rest[k:]
		}
		size, err := w.End()
		if err != nil || size != int64(n) {
			t.Fatalf("End: %d, %v", size, err)
		}
		want[name], order = data, append(order, name)
	}
	if err := w.Add("vm.mf", []byte("SHA256(vm.ovf)= x\n")); err != nil {
		t.Fatal(err)
	}
	want["vm.mf"], order = []byte("SHA256(vm.ovf)= x\n"), append(order, "vm.mf")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkWithGNUTar(t, path, order, want, w.Written())

	p := mustOpenPackage(t, path)
	if memberNames(p.Members()) != strings.Join(order, " ") || p.ManifestName() != "vm.mf" || p.Form() != "ova" {
		t.Fatalf("members %s, manifest %q", memberNames(p.Members()), p.ManifestName())
	}
	checkPackageNotes(t, p)
	for name, data := range want {
		if !bytes.Equal(readMember(t, p, name), data) {
			t.Fatalf("%s reads back differently", name)
		}
	}
}

// checkWithGNUTar lists and extracts path with GNU tar and compares names,
// sizes, bytes and the writer's digests with sha256sum's.
func checkWithGNUTar(t *testing.T, path string, order []string, want map[string][]byte, written []Written) {
	t.Helper()
	out, err := exec.Command("tar", "-tvf", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvf: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(order) {
		t.Fatalf("tar -tvf lists %d members, want %d:\n%s", len(lines), len(order), out)
	}
	for i, line := range lines {
		f := strings.Fields(line)
		if f[0] != "-rw-r--r--" || f[len(f)-1] != order[i] || f[2] != strconv.Itoa(len(want[order[i]])) {
			t.Fatalf("tar -tvf line %d: %q, want %s of %d bytes", i, line, order[i], len(want[order[i]]))
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", path, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, out)
	}
	if len(written) != len(order) {
		t.Fatalf("Written lists %d members, want %d", len(written), len(order))
	}
	for i, name := range order {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want[name]) {
			t.Fatalf("%s extracts differently (%v)", name, err)
		}
		sum, err := exec.Command("sha256sum", filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatal(err)
		}
		wr := written[i]
		if wr.Name != name || wr.Size != int64(len(want[name])) || hex.EncodeToString(wr.Digest) != strings.Fields(string(sum))[0] {
			t.Fatalf("Written %s %d %x; sha256sum %s", wr.Name, wr.Size, wr.Digest, sum)
		}
	}
}

// A chunked member into a pipe-like writer: chunks of chunkSize but the
// last, which archive/tar and GNU tar read, and which OpenFile joins.
func TestOVAWriterChunked(t *testing.T) {
	testutil.NeedTools(t, "tar", "sha256sum")
	const chunk = 4096
	for _, n := range []int{0, 1, chunk, 3*chunk + 100, 3 << 20} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.Hash = sha256.New
		if w.CanPatch() {
			t.Fatal("a buffer can patch")
		}
		if _, err := w.Begin("disk1.vmdk"); err == nil {
			t.Fatal("Begin on a buffer")
		}
		data := testBytes(n, uint64(n))
		w.Add("vm.ovf", []byte(testOVF))
		cw, err := w.BeginChunked("disk1.vmdk", chunk)
		if err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; {
			k := min(len(rest), 777)
			if m, err := cw.Write(rest[:k]); m != k || err != nil {
				t.Fatal(m, err)
			}
			rest = rest[k:]
		}
		chunks, err := w.EndChunked()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write([]byte{1}); err == nil {
			t.Fatal("write after EndChunked")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want := map[string][]byte{"vm.ovf": []byte(testOVF)}
		order := []string{"vm.ovf"}
		for i, c := range chunks {
			if c.Name != fmt.Sprintf("disk1.vmdk.%09d", i) || i < len(chunks)-1 && c.Size != chunk || c.Size > chunk {
				t.Fatalf("n %d: chunk %d: %+v", n, i, c)
			}
			want[c.Name] = data[i*chunk : i*chunk+int(c.Size)]
			order = append(order, c.Name)
		}
		if wantChunks := max(1, (n+chunk-1)/chunk); len(chunks) != wantChunks {
			t.Fatalf("n %d: %d chunks, want %d", n, len(chunks), wantChunks)
		}
		readWithArchiveTar(t, buf.Bytes(), order, want)
		path := writeTempOVA(t, buf.Bytes())
		checkWithGNUTar(t, path, order, want, w.Written())

		p := mustOpenPackage(t, path)
		f, err := p.OpenFile("disk1.vmdk", int64(n), chunk, "")
		if err != nil {
			t.Fatal(err)
		}
		checkRandomReads(t, f, data)
	}
}

func readWithArchiveTar(t *testing.T, b []byte, order []string, want map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for _, name := range order {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil || h.Name != name || h.Format != tar.FormatUSTAR || !bytes.Equal(data, want[name]) {
			t.Fatalf("archive/tar reads %s (%v), %v; want %s", h.Name, h.Format, err, name)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("archive/tar after the last member: %v", err)
	}
}

// checkRandomReads reads f at random offsets and lengths, across chunk
// boundaries, and compares with data.
func checkRandomReads(t *testing.T, f FileData, data []byte) {
	t.Helper()
	if f.Sequential() || f.Size() != int64(len(data)) {
		t.Fatalf("size %d of %d, sequential %v", f.Size(), len(data), f.Sequential())
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		off := r.IntN(len(data) + 1)
		b := make([]byte, r.IntN(3*4096))
		n, err := f.ReadAt(b, int64(off))
		want := data[off:min(len(data), off+len(b))]
		if n != len(want) || !bytes.Equal(b[:n], want) || (n < len(b)) != (err == io.EOF) || n == len(b) && err != nil {
			t.Fatalf("ReadAt(%d bytes, %d): %d, %v", len(b), off, n, err)
		}
	}
	rc, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("Reader: %d bytes, %v", len(all), err)
	}
}

func TestOVAWriterRefuses(t *testing.T) {
	w := NewWriter(io.Discard)
	for _, name := range []string{"", "../x", "/x", `a\b`, "./x", "a//b", strings.Repeat("x", 101), "a/../b"} {
		if err := w.Add(name, nil); err == nil {
			t.Fatalf("name %q accepted", name)
		}
	}
	if err := w.Add("x", nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Add("x", nil); err == nil {
		t.Fatal("a name written twice")
	}
	if _, err := w.BeginChunked(strings.Repeat("x", 95), 512); err == nil {
		t.Fatal("a chunk name longer than 100 bytes accepted")
	}
	if _, err := w.BeginChunked("d", 0); err == nil {
		t.Fatal("chunk size 0 accepted")
	}
	w.BeginChunked("d", 512)
	if err := w.Add("x", nil); err == nil {
		t.Fatal("Add while a chunked member is open")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close while a member is open")
	}
	if _, err := w.End(); err == nil {
		t.Fatal("End after BeginChunked")
	}
}

// A size of 8 GiB or more is written base-256 by End: checked on a header
// the writer patched, without writing 8 GiB.
func TestOVAWriterLargeHeader(t *testing.T) {
	h, err := tarx.USTARHeader("disk1.vmdk", 9<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := tar.NewReader(bytes.NewReader(h[:])).Next()
	if err != nil || hdr.Size != 9<<30 {
		t.Fatalf("%v %v", hdr, err)
	}
}

// The package used by the reader tests: an .ovf, a manifest, two disks.
var pkgFiles = map[string][]byte{
	"vm.ovf":     []byte(testOVF),
	"vm.mf":      []byte("SHA256(vm.ovf)= 00\n"),
	"disk1.vmdk": testBytes(5000, 1),
	"disk2.vmdk": testBytes(1<<20+3, 2),
}

func TestOVAReaderOrders(t *testing.T) {
	dir := t.TempDir()
	writeTestTree(t, dir, pkgFiles)
	for _, c := range []struct {
		order []string
		notes []string
	}{
		{[]string{"vm.ovf", "vm.mf", "disk1.vmdk", "disk2.vmdk"}, nil},
		{[]string{"vm.ovf", "disk1.vmdk", "disk2.vmdk", "vm.mf"}, nil},
		{[]string{"vm.ovf", "disk1.vmdk"}, nil},
		{[]string{"disk1.vmdk", "vm.ovf", "vm.mf", "disk2.vmdk"}, []string{"vm.ovf is not the first member (member 2)"}},
		{[]string{"vm.ovf", "disk1.vmdk", "vm.mf", "disk2.vmdk"}, []string{"vm.mf is neither right after the .ovf nor at the end"}},
	} {
		for _, format := range []string{"ustar", "gnu", "pax", "v7"} {
			p := mustOpenPackage(t, gnuTar(t, dir, format, c.order...))
			if memberNames(p.Members()) != strings.Join(c.order, " ") || p.DescriptorName() != "vm.ovf" {
				t.Fatalf("%s %v: members %s", format, c.order, memberNames(p.Members()))
			}
			checkPackageNotes(t, p, c.notes...)
			for _, name := range c.order {
				if !p.Has(name) || !bytes.Equal(readMember(t, p, name), pkgFiles[name]) {
					t.Fatalf("%s: %s reads differently", format, name)
				}
			}
			d, err := p.Descriptor()
			if err != nil || string(d) != testOVF {
				t.Fatalf("descriptor %q, %v", d, err)
			}
			wantMF := ""
			if strings.Contains(strings.Join(c.order, " "), "vm.mf") {
				wantMF = "vm.mf"
				if mf, err := p.ManifestBytes(); err != nil || !bytes.Equal(mf, pkgFiles["vm.mf"]) {
					t.Fatalf("manifest %q, %v", mf, err)
				}
			}
			if p.ManifestName() != wantMF {
				t.Fatalf("manifest name %q", p.ManifestName())
			}
			// Offsets locate the data in the file itself.
			raw, _ := os.ReadFile(p.path)
			for _, m := range p.Members() {
				if !bytes.Equal(raw[m.Offset:m.Offset+m.Size], pkgFiles[m.Name]) {
					t.Fatalf("%s: offset %d does not locate %s", format, m.Offset, m.Name)
				}
			}
			f, err := p.OpenFile("disk1.vmdk", 5000, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			checkRandomReads(t, f, pkgFiles["disk1.vmdk"])
		}
	}
}

// Long names, as GNU (././@LongLink) and PAX (path) write them, and the .ovf
// in a subdirectory, which virt-v2v accepts: hrefs are relative to it.
func TestOVAReaderLongNamesAndSubdirectory(t *testing.T) {
	long := strings.Repeat("l", 120) + ".vmdk"
	dir := t.TempDir()
	files := map[string][]byte{"vm/vm.ovf": []byte(testOVF), "vm/" + long: testBytes(700, 3), "vm/vm.mf": []byte("m")}
	writeTestTree(t, dir, files)
	for _, format := range []string{"gnu", "pax"} {
		p := mustOpenPackage(t, gnuTar(t, dir, format, "vm/vm.ovf", "vm/vm.mf", "vm/"+long))
		if !p.Has(long) || p.DescriptorName() != "vm.ovf" || p.ManifestName() != "vm.mf" {
			t.Fatalf("%s: members %s", format, memberNames(p.Members()))
		}
		checkPackageNotes(t, p, "directory vm")
		f, err := p.OpenFile("./"+long, 700, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		checkRandomReads(t, f, files["vm/"+long])
	}
}

// Members named twice are refused, naming the member.
func TestOVAReaderDuplicates(t *testing.T) {
	dir := t.TempDir()
	writeTestTree(t, dir, pkgFiles)
	openPackageErr(t, stdTar(t, "vm.ovf", "disk1.vmdk", "disk1.vmdk"), `member "disk1.vmdk" twice`)
	openPackageErr(t, stdTar(t, "vm.ovf", "./disk1.vmdk", "disk1.vmdk"), `member "disk1.vmdk" twice`)
}

func TestOVAReaderRefusesNames(t *testing.T) {
	for _, c := range []struct{ members, want string }{
		{"vm.ovf ../x", `"../x" holds ".."`},
		{"vm.ovf a/../../x", `"a/../../x" holds ".."`},
		{"/vm.ovf", `"/vm.ovf" is not a local name`},
		{`vm.ovf a\b`, `"a\\b" is not a local name`},
		{"a.ovf b.ovf", "2 .ovf descriptors (a.ovf, b.ovf)"},
		{"disk1.vmdk", "holds no .ovf descriptor"},
	} {
		openPackageErr(t, stdTar(t, strings.Fields(c.members)...), c.want)
	}
}

func TestOVAReaderTruncated(t *testing.T) {
	dir := t.TempDir()
	writeTestTree(t, dir, pkgFiles)
	full, err := os.ReadFile(gnuTar(t, dir, "ustar", "vm.ovf", "disk1.vmdk", "disk2.vmdk"))
	if err != nil {
		t.Fatal(err)
	}
	// disk2.vmdk's data begins after 2 + 11 + 1 blocks.
	for _, cut := range []int{14*512 + 100, 14*512 + 1<<20 + 3 - 100, 14*512 + 1<<20 + 3 + 100} {
		openPackageErr(t, writeTempOVA(t, full[:cut]), `ends inside member "disk2.vmdk"`)
	}
	openPackageErr(t, writeTempOVA(t, full[:4*512+100]), `ends inside member "disk1.vmdk"`)
	openPackageErr(t, writeTempOVA(t, full[:13*512+100]), "ends inside a tar header at offset 6656")
}

// A size field claiming exabytes is refused from the header alone.
func TestOVAReaderHugeSize(t *testing.T) {
	h, _ := tarx.USTARHeader("vm.ovf", 1<<60, 0)
	b := append(h[:], make([]byte, 4096)...)
	path := writeTempOVA(t, b)
	fuzzutil.Bounded(t, 1<<20, func() { openPackageErr(t, path, `ends inside member "vm.ovf"`) })
}

func TestOVAReaderChunks(t *testing.T) {
	const chunk = 10240
	data := testBytes(32768, 9) // 10k + 10k + 12k, the V2V test's sizes, but fitting
	data = data[:3*chunk-1000]
	dir := t.TempDir()
	files := map[string][]byte{"vm.ovf": []byte(testOVF)}
	var chunks []string
	for i := 0; i*chunk < len(data); i++ {
		name := fmt.Sprintf("disk1.vmdk.%09d", i)
		files[name] = data[i*chunk : min(len(data), (i+1)*chunk)]
		chunks = append(chunks, name)
	}
	files["short.vmdk.000000000"] = make([]byte, 100)
	files["short.vmdk.000000001"] = make([]byte, 100)
	writeTestTree(t, dir, files)
	all := append([]string{"vm.ovf"}, chunks...)

	p := mustOpenPackage(t, gnuTar(t, dir, "ustar", all...))
	for _, size := range []int64{int64(len(data)), -1} {
		f, err := p.OpenFile("disk1.vmdk", size, chunk, "")
		if err != nil {
			t.Fatal(err)
		}
		checkRandomReads(t, f, data)
	}
	for _, c := range []struct {
		members []string
		size    int64
		want    string
	}{
		{[]string{"vm.ovf", chunks[0], chunks[2]}, -1, "missing chunk 1 of disk1.vmdk"},
		{[]string{"vm.ovf", chunks[1], chunks[2]}, -1, "missing chunk 0 of disk1.vmdk"},
		{[]string{"vm.ovf", chunks[0], chunks[1]}, int64(len(data)), "missing chunk 2 of disk1.vmdk"},
		{all, int64(len(data)) + 1, "hold 29720 bytes, the References say 29721"},
		{[]string{"vm.ovf", "short.vmdk.000000000", "short.vmdk.000000001"}, -1, "chunk short.vmdk.000000000 is 100 bytes, not the chunk size 10240"},
	} {
		p := mustOpenPackage(t, gnuTar(t, dir, "ustar", c.members...))
		name, _, _ := strings.Cut(c.members[len(c.members)-1], ".vmdk")
		_, err := p.OpenFile(name+".vmdk", c.size, chunk, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%v: %v; want %q", c.members, err, c.want)
		}
	}
}

// A stored size other than ovf:size is a note: XenCenter writes the
// physical utilisation there.
func TestOVAReaderSizeMismatchIsANote(t *testing.T) {
	dir := t.TempDir()
	writeTestTree(t, dir, pkgFiles)
	p := mustOpenPackage(t, gnuTar(t, dir, "ustar", "vm.ovf", "disk1.vmdk"))
	f, err := p.OpenFile("disk1.vmdk", 4000, 0, "")
	if err != nil || f.Size() != 5000 {
		t.Fatal(err)
	}
	checkPackageNotes(t, p, "disk1.vmdk holds 5000 bytes where the References say 4000")
	for _, href := range []string{"../disk1.vmdk", "http://example.com/disk1.vmdk", "missing.vmdk"} {
		if _, err := p.OpenFile(href, -1, 0, ""); err == nil {
			t.Fatalf("href %q opened", href)
		}
	}
	if _, err := p.OpenFile("disk1.vmdk", -1, 0, "bzip2"); err == nil {
		t.Fatal("bzip2 accepted")
	}
}

func TestOVAReaderGzipFile(t *testing.T) {
	data := testBytes(300000, 4)
	// Two gzip members, as pigz or a concatenation writes: multistream.
	var gz bytes.Buffer
	for _, half := range [][]byte{data[:100000], data[100000:]} {
		zw := gzip.NewWriter(&gz)
		zw.Write(half)
		zw.Close()
	}
	dir := t.TempDir()
	writeTestTree(t, dir, map[string][]byte{"vm.ovf": []byte(testOVF), "disk1.vmdk.gz": gz.Bytes()})
	for _, form := range []string{"ova", "ovf"} {
		path := filepath.Join(dir, "vm.ovf")
		if form == "ova" {
			path = gnuTar(t, dir, "ustar", "vm.ovf", "disk1.vmdk.gz")
		}
		p := mustOpenPackage(t, path)
		if p.Form() != form {
			t.Fatalf("form %s", p.Form())
		}
		f, err := p.OpenFile("disk1.vmdk.gz", int64(gz.Len()), 0, "gzip")
		if err != nil {
			t.Fatal(err)
		}
		if !f.Sequential() || f.Size() != -1 {
			t.Fatal("a gzip file is random-access")
		}
		if _, err := f.ReadAt(make([]byte, 1), 0); err == nil {
			t.Fatal("ReadAt on a gzip file")
		}
		r, err := f.Reader()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: inflated %d bytes, %v", form, len(got), err)
		}
		// Not gzip at all: the error names the file.
		if form == "ova" {
			f, _ := p.OpenFile("vm.ovf", -1, 0, "gzip")
			if _, err := f.Reader(); err == nil || !strings.Contains(err.Error(), "ovf: inflating vm.ovf") {
				t.Fatalf("inflating the .ovf: %v", err)
			}
		}
	}
}

func TestOVAReaderRefusesGzippedOVA(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(make([]byte, 2048))
	zw.Close()
	openPackageErr(t, writeTempOVA(t, buf.Bytes()), "gunzip it first")
}

func TestOVAReaderDescriptorLimit(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Add("vm.ovf", make([]byte, maxDescriptor+1))
	w.Close()
	p := mustOpenPackage(t, writeTempOVA(t, buf.Bytes()))
	if _, err := p.Descriptor(); err == nil || !strings.Contains(err.Error(), "more than the 4194304 allowed") {
		t.Fatal(err)
	}
}

// The directory form: files beside the .ovf, sorted after it; a symbolic
// link out of the directory is refused, one inside it followed.
func TestOVADirectoryForm(t *testing.T) {
	top := t.TempDir()
	writeTestTree(t, top, map[string][]byte{"secret": []byte("outside")})
	dir := filepath.Join(top, "pkg")
	writeTestTree(t, dir, pkgFiles)
	if err := os.Symlink(filepath.Join(top, "secret"), filepath.Join(dir, "evil.vmdk")); err != nil {
		t.Skip("no symbolic links:", err)
	}
	os.Symlink("../secret", filepath.Join(dir, "evil2.vmdk"))
	os.Symlink("disk1.vmdk", filepath.Join(dir, "alias.vmdk"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	p := mustOpenPackage(t, filepath.Join(dir, "vm.ovf"))
	if p.Form() != "ovf" || memberNames(p.Members()) != "vm.ovf alias.vmdk disk1.vmdk disk2.vmdk vm.mf" || p.ManifestName() != "vm.mf" {
		t.Fatalf("form %s, members %s", p.Form(), memberNames(p.Members()))
	}
	for _, name := range []string{"evil.vmdk", "evil2.vmdk", "../secret"} {
		if p.Has(name) {
			t.Fatalf("Has(%q)", name)
		}
		if _, _, err := p.Open(name); err == nil {
			t.Fatalf("opened %s", name)
		}
		if _, err := p.OpenFile(name, -1, 0, ""); err == nil {
			t.Fatalf("OpenFile %s", name)
		}
	}
	if !bytes.Equal(readMember(t, p, "alias.vmdk"), pkgFiles["disk1.vmdk"]) {
		t.Fatal("a link inside the directory reads differently")
	}
	f, err := p.OpenFile("disk2.vmdk", -1, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	checkRandomReads(t, f, pkgFiles["disk2.vmdk"])
	d, err := p.Descriptor()
	if err != nil || string(d) != testOVF {
		t.Fatal(err)
	}
	// Chunks in the directory form too.
	writeTestTree(t, dir, map[string][]byte{"c.vmdk.000000000": make([]byte, 512), "c.vmdk.000000002": make([]byte, 5)})
	if _, err := p.OpenFile("c.vmdk", -1, 512, ""); err == nil || !strings.Contains(err.Error(), "missing chunk 1 of c.vmdk") {
		t.Fatal(err)
	}
}

// An href is a URI: a name with a space may be written percent-encoded.
func TestOVAReaderPercentEncodedHref(t *testing.T) {
	p := mustOpenPackage(t, stdTar(t, "vm.ovf", "disk 1.vmdk"))
	f, err := p.OpenFile("disk%201.vmdk", -1, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	checkRandomReads(t, f, []byte("data of disk 1.vmdk"))
}
