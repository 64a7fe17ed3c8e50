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
	"time"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
	"github.com/xva-tools/xva/nbd"
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
	// Gzip files with no piece index, read through restart points: the
	// archive compressed as a whole by xva and by gzip, chunks recompressed
	// by gzip and by pigz (split+gzip archives), in a directory and a tar.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	if _, err := xva.PackDir(ctx, vmdir, filepath.Join(dir, "whole.xva.gz"), xva.WithFormat(xva.XAPI), xva.WithCompression("gzip")); err != nil {
		t.Fatal(err)
	}
	archives["whole.xva.gz"] = nil
	// zstd as xva writes it: the seekable format, read through its table.
	if _, err := xva.PackDir(ctx, vmdir, filepath.Join(dir, "whole.xva.zst"), xva.WithFormat(xva.XAPI), xva.WithCompression("zstd")); err != nil {
		t.Fatal(err)
	}
	archives["whole.xva.zst"] = nil
	testutil.NeedTools(t, "gzip", "pigz", "tar", "zstd")
	sh(t, dir, "sh", "-c", "gzip -c xapi.xva > gzip.xva.gz")
	archives["gzip.xva.gz"] = nil
	// One zstd stream with no seek table, as the zstd program writes it
	// from a pipe (as a host's /export?compress=zstd sends it: no content
	// size, a 2 MiB window at -3) and from a file, read through restart
	// points.
	sh(t, dir, "sh", "-c", "cat xapi.xva | zstd -q -3 > zstd.xva.zst")
	sh(t, dir, "sh", "-c", "zstd -q -19 -o zstd19.xva.zst legacy.xva")
	archives["zstd.xva.zst"] = nil
	archives["zstd19.xva.zst"] = nil
	for _, tool := range []string{"gzip", "pigz"} {
		d := "foreign-" + tool
		sh(t, dir, "cp", "-r", "legacy-dir", d)
		sh(t, dir, "sh", "-c", "for c in "+d+"/sd*/chunk-*.gz; do gzip -dc $c | "+tool+" -c > $c.new && mv $c.new $c; done")
		sh(t, dir, "tar", "-C", d, "--sort=name", "-cf", d+".xva", ".")
		archives[d] = nil
		archives[d+".xva"] = nil
	}
	t.Cleanup(func() {
		// A second open of an archive compressed as a whole takes its tar
		// member table from the cache, and reads the same.
		for _, name := range []string{"gzip.xva.gz", "whole.xva.zst", "zstd.xva.zst"} {
			ad, err := xva.OpenDisks(ctx, filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%s again: %v", name, err)
			}
			if ad.Indexed != nil && ad.Indexed.Files != 0 {
				t.Errorf("%s again: indexes %+v, want all from the cache", name, ad.Indexed)
			}
			want, _ := os.ReadFile(filepath.Join(vmdir, "sda.raw"))
			sameAtRandom(t, ad.Disks[0], want)
			ad.Close()
		}
		// The indexes built are kept for the next time; a damaged cache
		// file is ignored and the index built again.
		caches, _ := filepath.Glob(filepath.Join(dir, "cache", "xva", "*.zran"))
		if len(caches) != 9 {
			t.Errorf("%d cache files, want one per archive with gzip files of others or compressed as a whole", len(caches))
		}
		for _, c := range caches {
			os.WriteFile(c, []byte("xva-zran 2\ngarbage"), 0o600)
		}
		ad, err := xva.OpenDisks(ctx, filepath.Join(dir, "foreign-pigz.xva"))
		if err != nil {
			t.Fatalf("with a damaged cache: %v", err)
		}
		want, _ := os.ReadFile(filepath.Join(vmdir, "sdb.raw"))
		sameAtRandom(t, ad.Disks[1], want)
		ad.Close()
	})
	for name := range archives {
		t.Run(name, func(t *testing.T) {
			ad, err := xva.OpenDisks(ctx, filepath.Join(dir, name))
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
		// What the NBD server reads instead: the same bytes, lent.
		if l, ok := src.(nbd.Lender); ok {
			parts, err := l.LendAt(nil, off, int64(k))
			if err != nil {
				t.Fatalf("LendAt(%d, %d): %v", off, k, err)
			}
			if got := bytes.Join(parts, nil); !bytes.Equal(got, want[off:off+int64(k)]) {
				t.Fatalf("LendAt(%d, %d) differs", off, k)
			}
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

// A damaged block fails the reads of its range only, in a zstd stream
// read through restart points too; a zstd window too large to read at
// random and a stream are refused with what to do.
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
	ad, err := xva.OpenDisks(ctx, filepath.Join(dir, "bad.xva"))
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
	// Lent, as the NBD server reads: the same failure, nothing lent of
	// the damaged block.
	if _, err := d.LendAt(nil, 4096, 1<<20); !xva.IsCorrupt(err) || !strings.Contains(err.Error(), "00000000") {
		t.Fatalf("lending the damaged block: %v", err)
	}
	if parts, err := d.LendAt(nil, 2<<20, 4096); err != nil || !bytes.Equal(bytes.Join(parts, nil), buf) {
		t.Fatalf("lending another block: %v", err)
	}

	// A damaged legacy chunk (ours): the piece that holds the damage fails
	// its CRC-32, the chunk's other pieces and the other disk read.
	l := filepath.Join(dir, "l.xva")
	if _, err := xva.PackDir(ctx, vmdir, l, xva.WithFormat(xva.Legacy)); err != nil {
		t.Fatal(err)
	}
	lb, _ := os.ReadFile(l)
	at = bytes.Index(lb, []byte("sda/chunk-000000000.gz\x00")) + 512 + 200000
	lb[at] ^= 0xff
	os.WriteFile(filepath.Join(dir, "lbad.xva"), lb, 0o644)
	lad, err := xva.OpenDisks(ctx, filepath.Join(dir, "lbad.xva"))
	if err != nil {
		t.Fatal(err)
	}
	defer lad.Close()
	bad, good := 0, 0
	piece := make([]byte, 1<<20)
	for off := int64(0); off < lad.Disk("sda").Size(); off += 1 << 20 {
		_, err := lad.Disk("sda").ReadAt(piece, off)
		switch {
		case err == nil || err == io.EOF:
			good++
		case xva.IsCorrupt(err) && strings.Contains(err.Error(), "chunk-000000000"):
			bad++
		default:
			t.Fatalf("reading at %d: %v", off, err)
		}
	}
	if bad != 1 || good == 0 {
		t.Fatalf("%d pieces failed and %d read; want the damaged one alone to fail", bad, good)
	}
	want, _ := os.ReadFile(filepath.Join(vmdir, "sdb.raw"))
	sameAtRandom(t, lad.Disk("sdb"), want)

	// One zstd stream, as the zstd tool (and a host's export) writes it,
	// has no seek table: it is read through restart points. Damaged
	// before its first open, it fails to index (its checksum);
	// damaged once indexed (the cache matching its size and mtime), the
	// span that holds the damage fails, the rest reads.
	testutil.NeedTools(t, "zstd")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	// A 256 KiB window: restart points every 4 MiB, a few in this archive.
	sh(t, dir, "sh", "-c", "zstd -q --zstd=wlog=18 -c x.xva > z.xva.zst")
	zst := filepath.Join(dir, "z.xva.zst")
	zb, _ := os.ReadFile(zst)
	zbad := bytes.Clone(zb)
	zbad[len(zbad)*9/10] ^= 0x55 // past the first span, which holds the metadata
	os.WriteFile(filepath.Join(dir, "zbad.xva.zst"), zbad, 0o644)
	if _, err := xva.OpenDisks(ctx, filepath.Join(dir, "zbad.xva.zst")); !xva.IsCorrupt(err) {
		t.Fatalf("a damaged zstd stream: %v", err)
	}
	zad, err := xva.OpenDisks(ctx, zst)
	if err != nil {
		t.Fatalf("a zstd stream: %v", err)
	}
	zad.Close()
	st, _ := os.Stat(zst)
	os.WriteFile(zst, zbad, 0o644)
	os.Chtimes(zst, st.ModTime(), st.ModTime())
	zad, err = xva.OpenDisks(ctx, zst)
	if err != nil {
		t.Fatalf("a zstd stream damaged since it was indexed: %v", err)
	}
	defer zad.Close()
	if zad.Indexed == nil || zad.Indexed.Files != 0 || zad.Indexed.Skipped != 1 {
		t.Fatalf("a zstd stream damaged since it was indexed: indexes %+v, want it from the cache", zad.Indexed)
	}
	bad, good = 0, 0
	for _, d := range zad.Disks {
		for off := int64(0); off < d.Size(); off += 1 << 20 {
			_, err := d.ReadAt(piece, off)
			switch {
			case err == nil || err == io.EOF:
				good++
			case xva.IsCorrupt(err) && strings.Contains(err.Error(), "z.xva.zst"):
				bad++
			default:
				t.Fatalf("reading at %d: %v", off, err)
			}
		}
	}
	if bad == 0 || good == 0 {
		t.Fatalf("%d MiB failed and %d read; want the damaged span's to fail, and the rest to read", bad, good)
	}
	// A window over 64 MiB (--long=27 from a pipe: 128 MiB) is refused.
	sh(t, dir, "sh", "-c", "zstd -q --long=27 -c < x.xva > long.xva.zst")
	if _, err := xva.OpenDisks(ctx, filepath.Join(dir, "long.xva.zst")); !errors.Is(err, xva.ErrUnsupported) || !strings.Contains(err.Error(), "xva convert") {
		t.Fatalf("a zstd stream with a 128 MiB window: %v", err)
	}
	if _, err := xva.OpenDisks(ctx, "-"); !errors.Is(err, xva.ErrBadOptions) {
		t.Fatalf("a stream: %v", err)
	}
}

// sh runs a command in dir and fails the test if it fails.
func sh(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// What unpack refuses, reading at random refuses too (the same walker): a
// member of no disk. A damaged archive compressed as a whole is an
// integrity failure, not the medium's.
func TestRandomAccessKeepsTheArchiveRules(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	vmdir := filepath.Join(dir, "vm")
	if _, err := randomVM.WriteDir(vmdir); err != nil {
		t.Fatal(err)
	}
	if _, err := xva.PackDir(ctx, vmdir, filepath.Join(dir, "x.xva"), xva.WithFormat(xva.XAPI)); err != nil {
		t.Fatal(err)
	}
	testutil.NeedTools(t, "tar", "gzip")
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	sh(t, x, "tar", "-xf", "../x.xva")
	os.Mkdir(filepath.Join(x, "junk"), 0o755)
	os.WriteFile(filepath.Join(x, "junk", "evil"), []byte("not a block"), 0o644)
	sh(t, x, "sh", "-c", "tar --format=ustar -cf ../stray.xva ova.xml $(tar -tf ../x.xva | grep -v ova.xml | head -4) junk/evil $(tar -tf ../x.xva | grep -v ova.xml | tail -n +5)")
	if _, err := xva.OpenDisks(ctx, filepath.Join(dir, "stray.xva")); xva.KindOf(err) == "" {
		t.Fatalf("a member of no disk: %v", err)
	}

	sh(t, dir, "sh", "-c", "gzip -c x.xva > g.xva.gz")
	b, _ := os.ReadFile(filepath.Join(dir, "g.xva.gz"))
	b[len(b)/2] ^= 0xff
	os.WriteFile(filepath.Join(dir, "bad.xva.gz"), b, 0o644)
	_, err := xva.OpenDisks(ctx, filepath.Join(dir, "bad.xva.gz"))
	if !xva.IsCorrupt(err) || xva.IsIOError(err) {
		t.Fatalf("a damaged gzip archive: %v (corrupt %v, I/O %v)", err, xva.IsCorrupt(err), xva.IsIOError(err))
	}
}

// The cache of a directory archive holds while its files stay as they
// are; a chunk rewritten in place, its size the same (the directory's
// mtime does not change then), has its index built again.
func TestRandomAccessCacheSeesRewrittenChunk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	vmdir := filepath.Join(dir, "vm")
	if _, err := randomVM.WriteDir(vmdir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	a := filepath.Join(dir, "a")
	if _, err := xva.PackDir(ctx, vmdir, a, xva.WithFormat(xva.Legacy), xva.WithDirectory(true)); err != nil {
		t.Fatal(err)
	}
	testutil.NeedTools(t, "gzip")
	sh(t, a, "sh", "-c", "for c in sd*/chunk-*.gz; do gzip -dc $c | gzip -c > $c.new && mv $c.new $c; done")
	chunks, _ := filepath.Glob(filepath.Join(a, "sda", "chunk-*.gz"))
	open := func() *xva.IndexBuild {
		t.Helper()
		ad, err := xva.OpenDisks(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		defer ad.Close()
		want, _ := os.ReadFile(filepath.Join(vmdir, "sda.raw"))
		sameAtRandom(t, ad.Disk("sda"), want)
		return ad.Indexed
	}
	if x := open(); x == nil || x.Files != len(chunks)+1 {
		t.Fatalf("first open: indexes %+v, want %d built", x, len(chunks)+1)
	}
	if x := open(); x == nil || x.Files != 0 {
		t.Fatalf("second open: indexes %+v, want all from the cache", x)
	}
	// The same bytes but the gzip header's mtime: the same size.
	dirSt, _ := os.Stat(a)
	b, _ := os.ReadFile(chunks[0])
	b[4] ^= 1
	if err := os.WriteFile(chunks[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(chunks[0], later, later)
	os.Chtimes(a, dirSt.ModTime(), dirSt.ModTime())
	if x := open(); x == nil || x.Files != 1 || x.Bytes != int64(len(b)) {
		t.Fatalf("after a chunk is rewritten: indexes %+v, want it alone (%d bytes) built again", x, len(b))
	}
	if x := open(); x == nil || x.Files != 0 {
		t.Fatalf("the open after: indexes %+v, want all from the cache", x)
	}
}
