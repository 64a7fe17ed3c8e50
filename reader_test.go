package xva_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
)

// readDisks reads every entry of r and rebuilds each disk from its
// extents, holes as zeros.
func readDisks(t *testing.T, r *xva.Reader) (ova []byte, disks map[string][]byte) {
	t.Helper()
	disks = map[string][]byte{}
	for _, d := range r.Metadata().Disks {
		disks[d.Device] = make([]byte, d.Size)
	}
	last := map[string]int64{}
	for {
		e, err := r.Next()
		if err == io.EOF {
			return ova, disks
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != e.Size {
			t.Fatalf("%+v: read %d bytes", e, len(b))
		}
		if e.Disk == nil {
			if e.Name != "ova.xml" || ova != nil {
				t.Fatalf("entry %+v", e)
			}
			ova = b
			continue
		}
		if e.Offset < last[e.Disk.Device] {
			t.Fatalf("%s: extent at %d after one ending at %d", e.Disk.Device, e.Offset, last[e.Disk.Device])
		}
		last[e.Disk.Device] = e.Offset + e.Size
		copy(disks[e.Disk.Device][e.Offset:], b)
	}
}

// The Reader gives ova.xml, then every disk's bytes, the same bytes as the
// images packed, for both generations and every container.
func TestReaderEntries(t *testing.T) {
	vmdir, sums := makeVM(t, fixtures.Disk{Size: 3<<20 + 512, Seed: 7, Data: 0.6}, fixtures.Disk{Size: 1 << 20, Seed: 8, Data: 0.3})
	ctx := context.Background()
	for _, c := range []struct {
		name string
		opts []xva.Option
	}{
		{"legacy.xva", []xva.Option{xva.WithFormat(xva.Legacy)}},
		{"legacy-dir", []xva.Option{xva.WithFormat(xva.Legacy), xva.WithDirectory(true)}},
		{"xapi.xva", []xva.Option{xva.WithFormat(xva.XAPI), xva.WithUUIDSeed("r")}},
		{"xapi.xva.zst", []xva.Option{xva.WithFormat(xva.XAPI), xva.WithUUIDSeed("r"), xva.WithCompression("zstd")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), c.name)
			if _, err := xva.PackDir(ctx, vmdir, out, c.opts...); err != nil {
				t.Fatal(err)
			}
			r, err := xva.OpenReader(out, xva.WithJobs(3))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ova, disks := readDisks(t, r)
			if !bytes.Equal(ova, r.Metadata().OVA) || len(ova) == 0 {
				t.Fatal("ova.xml differs")
			}
			for dev, want := range sums {
				img, _ := os.ReadFile(filepath.Join(vmdir, dev+".raw"))
				got := disks[dev][:len(img)] // xapi pads to whole sectors
				h := sha256.Sum256(got)
				if hex.EncodeToString(h[:]) != want && !bytes.Equal(got, img) {
					t.Errorf("disk %s differs", dev)
				}
			}
			for _, c := range r.Checked() {
				if c.Verified == 0 || c.Members == 0 {
					t.Errorf("disk %s: %+v", c.Disk.Device, c)
				}
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after the end: %v", err)
			}
		})
	}
}

// Without a hook the first problem is Next's error, a *CorruptError of its
// kind; with one, the Reader goes on and the hook hears every problem.
func TestReaderProblems(t *testing.T) {
	vmdir, _ := makeVM(t, fixtures.Disk{Size: 3 << 20, Seed: 3, Data: 0.8}, fixtures.Disk{Size: 1 << 20, Seed: 4, Data: 0.8})
	file := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(context.Background(), vmdir, file); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	const m = "sda/chunk-000000000.gz"
	off := memberOffsets(t, file)[m]
	b[off[0]+off[1]-8] ^= 0xff // the gzip CRC-32
	bad := filepath.Join(t.TempDir(), "bad.xva")
	os.WriteFile(bad, b, 0o644)

	r, err := xva.OpenReader(bad)
	if err != nil {
		t.Fatal(err)
	}
	var err1 error
	for err1 == nil {
		_, err1 = r.Next()
	}
	r.Close()
	var ce *xva.CorruptError
	if !errors.As(err1, &ce) || ce.Kind != xva.KindChecksum || ce.Member != m || ce.Disk != "sda" {
		t.Fatalf("first problem: %#v", err1)
	}

	var seen []*xva.CorruptError
	r, err = xva.OpenReader(bad, xva.WithOnProblem(func(e *xva.CorruptError) error { seen = append(seen, e); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, disks := readDisks(t, r)
	if len(seen) != 1 || seen[0].Kind != xva.KindChecksum || seen[0].Member != m {
		t.Fatalf("problems: %v", seen)
	}
	// sdb's chunk is intact: its bytes are the image's.
	img, err := os.ReadFile(filepath.Join(vmdir, "sdb.raw"))
	if err != nil || !bytes.Equal(disks["sdb"], img) {
		t.Error("sdb differs")
	}
	if c := r.Checked(); c[1].Verified != 1<<20 || c[0].Verified != 0 {
		t.Errorf("checked: %+v", c)
	}
}
