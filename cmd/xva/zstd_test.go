package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
)

// TestZstdLongWindow reads an archive the zstd tool compressed with
// --long=31 from a pipe (so the frame declares the whole 2 GiB window, not
// one shrunk to the input's size), and refuses a window larger than that
// as unsupported (exit 1), saying what to do, not as corruption.
func TestZstdLongWindow(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not installed")
	}
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--uuid-seed", "z", "a.xva")
	c := exec.Command("sh", "-c", "cat a.xva | zstd -q -1 --long=31 > a.xva.zst")
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v\n%s", err, out)
	}
	l, err := exec.Command("zstd", "-lv", filepath.Join(dir, "a.xva.zst")).CombinedOutput()
	if err != nil || !strings.Contains(string(l), "2.00 GiB") {
		t.Fatalf("zstd -lv: want a 2 GiB window: %v\n%s", err, l)
	}
	mustRun(t, dir, nil, "unpack", "a.xva", "plain")
	mustRun(t, dir, nil, "unpack", "a.xva.zst", "vm")
	want, _ := fixtures.HashFile(filepath.Join(dir, "plain", "sda.raw"))
	if got, _ := fixtures.HashFile(filepath.Join(dir, "vm", "sda.raw")); got != want || want == "" {
		t.Error("the disk of the --long=31 archive differs from the archive's")
	}
	if out := mustRun(t, dir, nil, "verify", "a.xva.zst"); !strings.HasPrefix(out, "OK") {
		t.Errorf("verify: %s", out)
	}
	mustRun(t, dir, nil, "info", "a.xva.zst")

	// A frame declaring a 4 GiB window (window log 32, which the zstd tool
	// never writes): a raw block after the header.
	big := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 22 << 3, 5<<3 | 1, 0, 0}, "hello"...)
	if err := os.WriteFile(filepath.Join(dir, "big.xva.zst"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"unpack", "big.xva.zst", "vm2"}, {"info", "big.xva.zst"}} {
		r := run(t, dir, nil, args...)
		if r.code != exitFailure || !strings.Contains(r.stderr, "unsupported") || !strings.Contains(r.stderr, "zstd -d --long=31") {
			t.Errorf("xva %v: exit %d, want 1 saying what to do\n%s", args, r.code, r.stderr)
		}
	}
	r := run(t, dir, nil, "info", "--json", "big.xva.zst")
	checkDoc(t, "error", r.stdout)
	if !strings.Contains(r.stdout, `"kind": "unsupported"`) {
		t.Errorf("info --json: %s", r.stdout)
	}
	r = run(t, dir, nil, "verify", "big.xva.zst")
	if r.code != exitFailure || !strings.Contains(r.stdout, "ERROR") || !strings.Contains(r.stdout, "zstd -d --long=31") {
		t.Errorf("verify: exit %d, want 1 (not corrupt)\n%s%s", r.code, r.stdout, r.stderr)
	}
}
