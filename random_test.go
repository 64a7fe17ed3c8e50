package xva_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/fixtures"
)

var randomVM = fixtures.VM{Name: "r", Memory: 256 << 20, VCPUs: 1, Disks: []fixtures.Disk{
	{Size: 5<<20 + 512, Seed: 61, Data: 0.4, MaxRegion: 300 << 10},
	{Size: 3 << 20, Seed: 62, Data: 0.1, MaxRegion: 64 << 10},
}}

// Every disk of every archive form read at random gives the disk's bytes
// at any offset and length, and its extents cover every non-zero byte.
func TestRandomAccessReadsEveryForm(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	vmdir := filepath.Join(dir, "vm")
	if _, err := randomVM.WriteDir(vmdir); err != nil {
		t.Fatal(err)
	}
	archives := map[string][]xva.Option{
		"xapi.xva":   {xva.WithFormat(xva.XAPI)},
		"sha1.xva":   {xva.WithFormat(xva.XAPI), xva.WithChecksum(chunk.SHA1)},
		"legacy.xva": {xva.WithFormat(xva.Legacy)},
		"legacy-dir": {xva.WithFormat(xva.Legacy), xva.WithDirectory(true)},
	}
	for name, opts := range archives {
		if _, err := xva.PackDir(ctx, vmdir, filepath.Join(dir, name), opts...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := randomVM.KeepAliveArchive(filepath.Join(dir, "keepalive.xva")); err != nil {
		t.Fatal(err)
	}
	archives["keepalive.xva"] = nil
	for name := range archives {
		t.Run(name, func(t *testing.T) {
			ad, err := xva.OpenDisks(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			defer ad.Close()
			if len(ad.Disks) != len(randomVM.Disks) {
				t.Fatalf("%d disks", len(ad.Disks))
			}
			for i, d := range ad.Disks {
				want, err := os.ReadFile(filepath.Join(vmdir, fixtures.Device(i)+".raw"))
				if err != nil {
					t.Fatal(err)
				}
				sameAtRandom(t, d, want)
			}
		})
	}
}

// sameAtRandom reads src at random offsets and lengths, and whole through
// its extents, and compares with want (padded to src's size).
func sameAtRandom(t *testing.T, src disk.Source, want []byte) {
	t.Helper()
	want = append(want, make([]byte, int(src.Size())-len(want))...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		off := rng.Int64N(src.Size())
		n := 1 + rng.IntN(3<<20)
		buf := make([]byte, n)
		k, err := src.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
		}
		if !bytes.Equal(buf[:k], want[off:off+int64(k)]) {
			t.Fatalf("ReadAt(%d, %d) differs", n, off)
		}
	}
	covered := make([]byte, len(want))
	for e, err := range disk.Extents(context.Background(), src) {
		if err != nil {
			t.Fatal(err)
		}
		copy(covered[e.Off:e.End()], want[e.Off:e.End()])
	}
	if !bytes.Equal(covered, want) {
		t.Fatal("a non-zero byte lies outside the extents")
	}
}

// A damaged block fails the reads of its range only; compressed archives,
// streams and chunks without our index are refused with what to do.
func TestRandomAccessRefusesWhatItCannotCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	vmdir := filepath.Join(dir, "vm")
	if _, err := randomVM.WriteDir(vmdir); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x.xva")
	if _, err := xva.PackDir(ctx, vmdir, x, xva.WithFormat(xva.XAPI)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(x)
	// The first data block of the first disk: flip a byte in it.
	at := bytes.Index(b, []byte("/00000000\x00")) + 512
	b[at+100] ^= 0xff
	os.WriteFile(filepath.Join(dir, "bad.xva"), b, 0o644)
	ad, err := xva.OpenDisks(filepath.Join(dir, "bad.xva"))
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	d := ad.Disks[0]
	buf := make([]byte, 4096)
	if _, err := d.ReadAt(buf, 0); !xva.IsCorrupt(err) || !strings.Contains(err.Error(), "00000000") {
		t.Fatalf("reading the damaged block: %v", err)
	}
	if _, err := d.ReadAt(buf, 2<<20); err != nil {
		t.Fatalf("reading another block: %v", err)
	}

	if _, err := xva.PackDir(ctx, vmdir, filepath.Join(dir, "z.xva.zst"), xva.WithFormat(xva.XAPI), xva.WithCompression("zstd")); err != nil {
		t.Fatal(err)
	}
	if _, err := xva.OpenDisks(filepath.Join(dir, "z.xva.zst")); !errors.Is(err, xva.ErrUnsupported) || !strings.Contains(err.Error(), "xva convert") {
		t.Fatalf("a zstd archive: %v", err)
	}
	if _, err := xva.OpenDisks("-"); !errors.Is(err, xva.ErrBadOptions) {
		t.Fatalf("a stream: %v", err)
	}
	// Chunks made with split and gzip carry no index.
	if _, err := exec.LookPath("gzip"); err == nil {
		legacy := filepath.Join(dir, "plain")
		if _, err := xva.PackDir(ctx, vmdir, legacy, xva.WithFormat(xva.Legacy), xva.WithDirectory(true)); err != nil {
			t.Fatal(err)
		}
		chunk := filepath.Join(legacy, "sda", "chunk-000000000.gz")
		raw, _ := exec.Command("gzip", "-dc", chunk).Output()
		cmd := exec.Command("gzip", "-c")
		cmd.Stdin = bytes.NewReader(raw)
		plain, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(chunk, plain, 0o644)
		if _, err := xva.OpenDisks(legacy); !errors.Is(err, xva.ErrUnsupported) || !strings.Contains(err.Error(), "not written by xva") {
			t.Fatalf("plain gzip chunks: %v", err)
		}
	}
}
