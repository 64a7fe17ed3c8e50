package blockdev

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva/internal/testutil"
)

// stale fills a medium with non-zero bytes, as a reused disk has.
func stale(t *testing.T, path string, size int) []byte {
	t.Helper()
	b := bytes.Repeat([]byte{0xEE}, size)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// exercise writes random runs with gaps of every kind (inside a sector,
// across sectors, across stage boundaries) and checks the result: data where
// written, zeros in every gap up to the disk's end, the rest untouched.
func exercise(t *testing.T, path string, medium []byte, diskSize int64, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	want := bytes.Clone(medium)
	tg, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(r.IntN(3000))
	clear(want[:off])
	for off < diskSize {
		n := min(int64(1+r.IntN([]int{100, 4000, 6 << 20}[r.IntN(3)])), diskSize-off)
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32()) | 1
		}
		if _, err := tg.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
		gap := int64([]int{0, 1 + r.IntN(511), 1 + r.IntN(20000), 1 + r.IntN(5<<20)}[r.IntN(4)])
		gap = min(gap, diskSize-off-n)
		clear(want[off+n : off+n+gap])
		off += n + gap
	}
	// Zeros up to the end of the sector holding the disk's end.
	end := (diskSize + tg.SectorSize() - 1) / tg.SectorSize() * tg.SectorSize()
	clear(want[off:end])
	if err := tg.Finish(diskSize); err != nil {
		t.Fatal(err)
	}
	tg.Close()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > len(want) {
		got = got[:len(want)]
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("seed %d: byte %d is %#x, want %#x", seed, i, got[i], want[i])
			}
		}
	}
}

func TestFileTarget(t *testing.T) {
	for seed := range uint64(20) {
		path := filepath.Join(t.TempDir(), "medium")
		medium := stale(t, path, 24<<20)
		exercise(t, path, medium, 20<<20+int64(seed)*777, seed)
	}
}

func TestPrezeroedLeavesGapsAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "medium")
	stale(t, path, 1<<20)
	tg, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	tg.WriteAt([]byte{1, 2, 3}, 100)
	tg.WriteAt([]byte{4}, 600000)
	if err := tg.Finish(1 << 20); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if got[4096] != 0xEE || got[100] != 1 || got[600000] != 4 {
		t.Fatal("a prezeroed target had its gaps zeroed, or lost data")
	}
}

func TestDeviceTarget(t *testing.T) {
	for seed := range uint64(5) {
		img := filepath.Join(t.TempDir(), "backing")
		medium := stale(t, img, 24<<20)
		dev := testutil.Loop(t, img)
		tg, err := Open(dev, false)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Size() != 24<<20 || tg.SectorSize() < 512 {
			t.Fatalf("device size %d, sector %d", tg.Size(), tg.SectorSize())
		}
		tg.Close()
		exercise(t, dev, medium, 20<<20+int64(seed)*777+1, seed+100)
	}
}

func TestWindowsZeroOnlyInside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "medium")
	stale(t, path, 1<<20)
	tg, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	// Two windows with another volume's bytes between them.
	a, _ := tg.Window(0, 8192)
	b, _ := tg.Window(65536, 8192)
	a.WriteAt([]byte{1}, 10)
	if err := a.Finish(8192); err != nil {
		t.Fatal(err)
	}
	b.WriteAt([]byte{2}, 4000)
	if err := b.Finish(8192); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if got[10] != 1 || got[11] != 0 || got[8191] != 0 || got[8192] != 0xEE || got[65535] != 0xEE ||
		got[65536] != 0 || got[65536+4000] != 2 || got[65536+8191] != 0 || got[65536+8192] != 0xEE {
		t.Fatal("a window wrote outside itself, or left stale bytes inside")
	}
	if _, err := tg.Window(100, 512); err == nil {
		t.Fatal("an unaligned window was accepted")
	}
}
