// Command fuzzseed writes the seed corpora of the fuzz targets into each
// package's testdata/fuzz directory: documents from ../shared/samples,
// archives and images our fixtures produce, and files made by the real
// peers (gzip, pigz, GNU tar, qemu-img) where they are installed. Run it
// from the module root with `make fuzz-seeds`; its output is checked in.
//
// It may import the root package, chunk and fixtures.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
)

// seeds collects corpus entries per target directory.
type seeds struct {
	n   int
	err error
}

// add writes one entry: a file named after its content, in the format
// `go test` reads (a version line, then one Go literal per argument).
func (s *seeds) add(dir string, args ...any) {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", v)
		default:
			panic(fmt.Sprintf("fuzzseed: no literal for %T", a))
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.err = err
		return
	}
	path := filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8]))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		s.err = err
	}
	s.n++
}

func main() {
	samples := flag.String("samples", "../shared/samples", "directory of sample ova.xml documents")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "fuzzseed")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	s := &seeds{}
	docs, err := documents(*samples, tmp)
	if err != nil {
		fail(err)
	}
	for _, d := range docs {
		s.add("ova/testdata/fuzz/FuzzParseLegacy", d)
		s.add("ova/testdata/fuzz/FuzzParseExport", d)
		s.add("testdata/fuzz/FuzzParseMetadata", d)
	}
	for _, step := range []func(*seeds, string) error{tarSeeds, gzipSeeds, blockSeeds, vhdSeeds, lvmSeeds} {
		if err := step(s, tmp); err != nil {
			fail(err)
		}
	}
	if s.err != nil {
		fail(s.err)
	}
	fmt.Printf("fuzzseed: wrote %d seed files\n", s.n)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fuzzseed:", err)
	os.Exit(1)
}

// tinyVM is a VM small enough that its archives make useful fuzz inputs.
var tinyVM = fixtures.VM{Name: "seed", Memory: 1 << 28, VCPUs: 1, Disks: []fixtures.Disk{
	{Size: 3000, Seed: 1, Data: 0.9, MaxRegion: 1000},
	{Size: 1536, Seed: 2, Data: 0.5, MaxRegion: 500},
}}

// documents returns the sample ova.xml files and the ones our fixtures
// write, of both generations.
func documents(samples, tmp string) ([][]byte, error) {
	var docs [][]byte
	for _, name := range []string{"rbuilder-legacy-ova-filled.xml", "rbuilder-legacy-ova.xml.in", "xenserver-5.5-modern-ova.xml"} {
		b, err := os.ReadFile(filepath.Join(samples, name))
		if err != nil {
			return nil, fmt.Errorf("%w (pass -samples)", err)
		}
		docs = append(docs, b)
	}
	for _, xapiGen := range []bool{false, true} {
		dir := filepath.Join(tmp, fmt.Sprintf("vm-%t", xapiGen))
		var err error
		if xapiGen {
			_, err = tinyVM.WriteXapiDir(dir, nil)
		} else {
			_, err = tinyVM.WriteDir(dir)
		}
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(dir, "ova.xml"))
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return docs, nil
}

// tarSeeds: our archives of both generations, archive/tar's USTAR, PAX and
// GNU forms with a long name, and GNU tar's own output.
func tarSeeds(s *seeds, tmp string) error {
	const dir = "internal/tarx/testdata/fuzz/FuzzReader"
	for _, f := range []xva.Generation{xva.Legacy, xva.XAPI} {
		out := filepath.Join(tmp, f.String()+".xva")
		if _, err := xva.PackDir(context.Background(), filepath.Join(tmp, "vm-false"), out, xva.WithFormat(f)); err != nil {
			return err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		s.add(dir, b, false)
	}
	long := strings.Repeat("d/", 60) + "chunk-000000000.gz"
	for _, format := range []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, name := range []string{"ova.xml", long} {
			if format == tar.FormatUSTAR && len(name) > 100 {
				name = name[len(name)-90:]
			}
			tw.WriteHeader(&tar.Header{Name: name, Size: 5, Mode: 0o400, Format: format, Typeflag: tar.TypeReg})
			tw.Write([]byte("hello"))
		}
		tw.Close()
		s.add(dir, buf.Bytes(), false)
	}
	if _, err := exec.LookPath("tar"); err == nil {
		src := filepath.Join(tmp, "gnutar")
		os.MkdirAll(filepath.Join(src, "sda"), 0o755)
		os.WriteFile(filepath.Join(src, "ova.xml"), []byte("<value/>"), 0o644)
		os.WriteFile(filepath.Join(src, "sda", "00000000"), []byte("data"), 0o644)
		out, err := exec.Command("tar", "-C", src, "-cf", "-", "--format=gnu", "ova.xml", "sda").Output()
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		s.add(dir, out, false)
	}
	return nil
}

// gzipSeeds: our indexed chunks, and what gzip and pigz make, single and
// multi-member.
func gzipSeeds(s *seeds, tmp string) error {
	const dir = "chunk/testdata/fuzz/FuzzReadGzipChunk"
	data := bytes.Repeat([]byte("xenserver virtual appliance "), 200)
	data = append(data, make([]byte, 2*chunk.PieceSize)...)
	data = append(data, "tail"...)
	f, err := os.Create(filepath.Join(tmp, "ours.gz"))
	if err != nil {
		return err
	}
	_, err = chunk.WriteGzipChunk(context.Background(), f, filler(data), 0, int64(len(data)), chunk.GzipOptions{Level: 1})
	f.Close()
	if err != nil {
		return err
	}
	ours, err := os.ReadFile(filepath.Join(tmp, "ours.gz"))
	if err != nil {
		return err
	}
	s.add(dir, ours, int64(len(data)))
	small := data[:3000]
	for _, tool := range []string{"gzip", "pigz"} {
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		cmd := exec.Command(tool, "-c", "-6")
		cmd.Stdin = bytes.NewReader(small)
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
		s.add(dir, out, int64(len(small)))
		s.add(dir, append(bytes.Clone(out), out...), int64(-1)) // two members
	}
	return nil
}

// filler serves a byte slice as a chunk.Filler.
type filler []byte

func (f filler) Fill(buf []byte, off int64) (bool, error) {
	copy(buf, f[off:])
	return true, nil
}

// blockSeeds encodes a small disk in the block target's record format:
// selector, block number, length, data (selectors 4 and 5 add a correct
// xxhash or sha1 checksum member).
func blockSeeds(s *seeds, _ string) error {
	const dir = "chunk/testdata/fuzz/FuzzReadBlocks"
	rec := func(sel, num byte, data []byte) []byte {
		b := []byte{sel, num, 0, 0}
		binary.LittleEndian.PutUint16(b[2:], uint16(len(data)))
		return append(b, data...)
	}
	var in []byte
	in = append(in, rec(4, 0, []byte("first block"))...)
	in = append(in, rec(5, 2, []byte("third"))...)
	s.add(dir, in, int64(2*chunk.BlockSize+5))
	s.add(dir, append(rec(4, 0, nil), rec(4, 1, []byte("keep-alive before me"))...), int64(20))
	return nil
}

// vhdSeeds: qemu-img's fixed and dynamic VHDs.
func vhdSeeds(s *seeds, tmp string) error {
	const dir = "vhd/testdata/fuzz/FuzzOpen"
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil
	}
	raw := filepath.Join(tmp, "small.raw")
	if err := os.WriteFile(raw, append(bytes.Repeat([]byte("boot"), 1024), make([]byte, 28<<10)...), 0o644); err != nil {
		return err
	}
	for _, sub := range []string{"fixed", "dynamic"} {
		out := filepath.Join(tmp, sub+".vhd")
		args := []string{"convert", "-f", "raw", "-O", "vpc", "-o", "subformat=" + sub, raw, out}
		if sub == "dynamic" {
			args = []string{"create", "-f", "vpc", "-o", "subformat=dynamic", out, "32K"}
		}
		if msg, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("qemu-img: %v: %s", err, msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		s.add(dir, b, false)
	}
	return nil
}

// lvmSeeds: the metadata text in lvm/testdata, which the LVM tools wrote.
func lvmSeeds(s *seeds, _ string) error {
	b, err := os.ReadFile("lvm/testdata/vg-two-segments.txt")
	if err != nil {
		return err
	}
	s.add("lvm/testdata/fuzz/FuzzParseMetadata", string(b))
	return nil
}
