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
// usage error, a damaged block an integrity failure naming it; an archive
// compressed as one zstd stream reads too, and one that cannot be read at
// random is a failure saying what to do.
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
	// One zstd stream, as the zstd tool writes it (from a pipe, as a
	// host's export), is read through restart points, indexed on first
	// access; damaged, it is an integrity failure; a window too large to
	// read at random is refused with what to do.
	if _, err := exec.LookPath("zstd"); err == nil {
		t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
		sh(t, dir, "sh", "-c", "zstd -q -3 < x.xva > plain.xva.zst")
		r := run(t, dir, nil, "cat", "plain.xva.zst", "sda", "--offset", "1000000", "--length", "300000")
		if r.code != 0 || r.stdout != string(img[1000000:1300000]) || !strings.Contains(r.stderr, "indexed 1 ") {
			t.Errorf("cat of a range of a zstd stream: exit %d, %d bytes\n%s", r.code, len(r.stdout), r.stderr)
		}
		if out := mustRun(t, dir, nil, "cat", "plain.xva.zst", "sdb"); out != mustRun(t, dir, nil, "cat", "x.xva", "sdb") {
			t.Error("cat of a zstd stream: other bytes")
		}
		z, _ := os.ReadFile(filepath.Join(dir, "plain.xva.zst"))
		z[len(z)*9/10] ^= 0xff
		os.WriteFile(filepath.Join(dir, "badplain.xva.zst"), z, 0o644)
		if r := run(t, dir, nil, "cat", "badplain.xva.zst", "sda"); r.code != exitCorrupt {
			t.Errorf("a damaged zstd stream: exit %d\n%s", r.code, r.stderr)
		}
		sh(t, dir, "sh", "-c", "zstd -q --long=27 < x.xva > long.xva.zst")
		if r := run(t, dir, nil, "cat", "long.xva.zst", "sda"); r.code != exitFailure || !strings.Contains(r.stderr, "xva convert") {
			t.Errorf("a zstd stream with a 128 MiB window: exit %d\n%s", r.code, r.stderr)
		}
	}
}
