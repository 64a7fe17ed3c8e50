package ovf

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// FuzzOpenPackage opens any bytes as an OVA: no panic, allocation bounded
// by the input (the index, and at most the descriptor), and a package that
// opens has every member inside the file under a local name, and a
// descriptor of at most 4 MiB.
func FuzzOpenPackage(f *testing.F) {
	for _, seed := range ovaFuzzSeeds(f) {
		f.Add(seed, false)
	}
	// One file per worker, rewritten for each input (inputs run one at a
	// time in a worker): a directory per input costs more than the run.
	path := filepath.Join(f.TempDir(), "in.ova")
	f.Fuzz(func(t *testing.T, in []byte, fix bool) {
		if fix {
			fixTarChecksums(in)
		}
		if err := os.WriteFile(path, in, 0o644); err != nil {
			t.Fatal(err)
		}
		var p *Package
		var err error
		fuzzutil.Bounded(t, 4<<20+64*uint64(len(in)), func() { p, err = OpenPackage(path) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ovf: ") {
				t.Fatalf("error without the package's prefix: %v", err)
			}
			return
		}
		defer p.Close()
		if p.Form() != "ova" {
			return // text taken for a descriptor: its directory is the temp dir
		}
		for _, m := range p.Members() {
			if m.Offset < 0 || m.Size < 0 || m.Offset > int64(len(in)) || m.Size > int64(len(in))-m.Offset {
				t.Fatalf("member %q at %d, %d bytes, outside the %d-byte file", m.Name, m.Offset, m.Size, len(in))
			}
			if !fs.ValidPath(m.Name) || strings.Contains(m.Name, `\`) {
				t.Fatalf("member name %q is not local", m.Name)
			}
			if !p.Has(m.Name) {
				t.Fatalf("member %q listed but not held", m.Name)
			}
		}
		d, err := p.Descriptor()
		if err == nil && len(d) > maxDescriptor {
			t.Fatalf("descriptor of %d bytes", len(d))
		}
		if err == nil && !bytes.Equal(d, readMember(t, p, p.DescriptorName())) {
			t.Fatal("Descriptor and Open disagree")
		}
		for _, m := range p.Members() {
			if file, err := p.OpenFile(m.Name, -1, 0, ""); err != nil || file.Size() != m.Size {
				t.Fatalf("OpenFile(%q): %v", m.Name, err)
			}
		}
	})
}

// fixTarChecksums gives every non-zero block a valid tar header checksum, so
// that the fuzzer gets past the checksum to the fields behind it.
func fixTarChecksums(in []byte) {
	for off := 0; off+512 <= len(in); off += 512 {
		b := in[off : off+512]
		if bytes.Count(b, []byte{0}) == 512 {
			continue
		}
		copy(b[148:156], "        ")
		var sum int64
		for _, c := range b {
			sum += int64(c)
		}
		copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
}

// ovaFuzzSeeds are small OVAs: written by the Writer, plain and chunked, and
// with the .ovf in a subdirectory.
func ovaFuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, dir := range []string{"", "vm/"} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.Add(dir+"vm.ovf", []byte(testOVF))
		w.Add(dir+"vm.mf", []byte("SHA256(vm.ovf)= 00\n"))
		cw, _ := w.BeginChunked(dir+"disk1.vmdk", 512)
		cw.Write(bytes.Repeat([]byte{7}, 1300))
		w.EndChunked()
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	return seeds
}
