package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cat writes a disk, or a range of it, read at random from archives of
// both generations, the same bytes as the image packed; a wrong device is a
// usage error, a damaged block an integrity failure naming it, a
// compressed archive a failure saying what to do.
func TestCat(t *testing.T) {
	dir, sums := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "x.xva")
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "l.xva")
	img, _ := os.ReadFile(filepath.Join(dir, "sda.img"))
	padded := append(bytes.Clone(img), make([]byte, (512-len(img)%512)%512)...)
	for _, a := range []string{"x.xva", "l.xva"} {
		out := mustRun(t, dir, nil, "cat", a, "sdb")
		if s := sha256.Sum256([]byte(out)); hex.EncodeToString(s[:]) != sums["sdb"] {
			t.Errorf("cat %s sdb: other bytes", a)
		}
		whole := []byte(mustRun(t, dir, nil, "cat", a, "sda"))
		want := img
		if a == "x.xva" {
			want = padded // an xapi archive's disks are whole sectors
		}
		if !bytes.Equal(whole, want) {
			t.Errorf("cat %s sda: %d bytes, other than the image's %d", a, len(whole), len(want))
		}
		part := mustRun(t, dir, nil, "cat", a, "sda", "--offset", "1000000", "--length", "300000")
		if part != string(img[1000000:1300000]) {
			t.Errorf("cat %s sda --offset --length: other bytes", a)
		}
	}
	if r := run(t, dir, nil, "cat", "x.xva", "xvdz"); r.code != exitUsage || !strings.Contains(r.stderr, "sda, sdb") {
		t.Errorf("a wrong device: exit %d\n%s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	at := bytes.Index(b, []byte("/00000001\x00")) + 512 + 4096
	b[at] ^= 0xff
	os.WriteFile(filepath.Join(dir, "bad.xva"), b, 0o644)
	if r := run(t, dir, nil, "cat", "bad.xva", "sda", "--length", "4096"); r.code != 0 {
		t.Errorf("a range before the damaged block: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, dir, nil, "cat", "bad.xva", "sda"); r.code != exitCorrupt || !strings.Contains(r.stderr, "00000001") {
		t.Errorf("the damaged block: exit %d\n%s", r.code, r.stderr)
	}
	// xva writes zstd archives seekable: read at random through the table.
	mustRun(t, dir, nil, "convert", "x.xva", "z.xva.zst")
	if out := mustRun(t, dir, nil, "cat", "z.xva.zst", "sdb"); out != mustRun(t, dir, nil, "cat", "x.xva", "sdb") {
		t.Error("cat through the zstd seek table: other bytes")
	}
	// One zstd stream, as the zstd tool writes it, cannot be entered.
	if _, err := exec.LookPath("zstd"); err == nil {
		sh(t, dir, "sh", "-c", "zstd -q -c x.xva > plain.xva.zst")
		if r := run(t, dir, nil, "cat", "plain.xva.zst", "sda"); r.code != exitFailure || !strings.Contains(r.stderr, "xva convert") {
			t.Errorf("a zstd stream: exit %d\n%s", r.code, r.stderr)
		}
	}
}
