package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
)

// convert writes disk images: an image in another format, and one disk of
// an archive, checked with qemu-img against the source; an archive to a
// name that says an image is refused.
func TestConvertWritesImages(t *testing.T) {
	testutil.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	vm := fixtures.VM{Name: "img", Memory: 1 << 29, VCPUs: 1, Disks: []fixtures.Disk{
		{Size: 3<<20 + 512, Seed: 801, Data: 0.4, MaxRegion: 1 << 20}, {Size: 5 << 20, Seed: 802, Data: 0.3, MaxRegion: 1 << 20}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	compare := func(a, b string, format ...string) {
		t.Helper()
		args := append([]string{"compare"}, format...)
		if out, err := exec.Command("qemu-img", append(args, filepath.Join(dir, a), filepath.Join(dir, b))...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare %s %s: %v\n%s", a, b, err, out)
		}
	}
	// An image to another format and back.
	mustRun(t, dir, nil, "convert", "vm/sda.raw", "sda.vhd")
	compare("vm/sda.raw", "sda.vhd")
	out := mustRun(t, dir, nil, "convert", "--json", "sda.vhd", "back.raw")
	checkDoc(t, "image", out)
	compare("vm/sda.raw", "back.raw")
	// A compressed qcow2, each of qemu's compression types.
	for _, c := range []string{"zlib", "zstd"} {
		mustRun(t, dir, nil, "convert", "--compress", c, "vm/sdb.raw", c+".qcow2")
		if out, err := exec.Command("qemu-img", "check", filepath.Join(dir, c+".qcow2")).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img check %s.qcow2: %v\n%s", c, err, out)
		}
		compare("vm/sdb.raw", c+".qcow2")
	}
	// One disk of an archive of either generation, by extension and by flag.
	for _, format := range []string{"xapi", "legacy"} {
		mustRun(t, dir, nil, "pack", "--format", format, "vm", format+".xva")
		mustRun(t, dir, nil, "convert", format+".xva", format+"-sdb.vhd", "--disk", "sdb")
		compare("vm/sdb.raw", format+"-sdb.vhd")
		mustRun(t, dir, nil, "convert", format+".xva", format+"-sda.img", "--disk", "sda", "--disk-format", "vhd-fixed")
		compare("vm/sda.raw", format+"-sda.img", "-f", "raw", "-F", "vpc") // a fixed VHD has no header qemu probes for
	}
	for _, c := range [][]string{
		{"convert", "xapi.xva", "web.vhd"},                         // an archive named as an image
		{"convert", "xapi.xva", "x.vhd", "--disk", "sdz"},          // no such disk
		{"convert", "sda.vhd", "y.raw", "--disk", "sda"},           // --disk of an image
		{"convert", "xapi.xva", "z.xva", "--disk-format", "vhd"},   // --disk-format without --disk
		{"convert", "--compress", "gzip", "vm/sda.raw", "w.qcow2"}, // an archive's compression for an image
	} {
		if r := run(t, dir, nil, c...); r.code != exitUsage {
			t.Errorf("xva %s: exit %d, want 2\n%s", strings.Join(c, " "), r.code, r.stderr)
		}
	}
	for _, name := range []string{"web.vhd", "x.vhd", "y.raw", "z.xva", "w.qcow2"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("a refused convert left %s", name)
		}
	}
}

// Refusals of image outputs (exit 2, nothing written), and --disk of a
// blank disk that stops at that disk, before a damaged one after it.
func TestConvertImageRefusalsAndBlankDisk(t *testing.T) {
	dir := t.TempDir()
	vm := fixtures.VM{Name: "blank", Memory: 1 << 29, VCPUs: 1, Disks: []fixtures.Disk{
		{Size: 2 << 20, Seed: 811, Data: 0.5}, {Size: 4 << 20, Seed: 812, Data: 0.5}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	// sda blank: all zeros, so the archive carries no data for it but its
	// first and last blocks.
	if err := os.WriteFile(filepath.Join(dir, "vm", "sda.raw"), make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "a.xva")
	b, _ := os.ReadFile(filepath.Join(dir, "a.xva"))
	b[len(b)-4096] ^= 0xff // inside sdb's last block
	os.WriteFile(filepath.Join(dir, "bad.xva"), b, 0o600)
	if r := run(t, dir, nil, "verify", "bad.xva"); r.code != exitCorrupt {
		t.Fatalf("the damage is not found: exit %d", r.code)
	}
	mustRun(t, dir, nil, "convert", "bad.xva", "sda.raw", "--disk", "sda")
	if got, _ := os.ReadFile(filepath.Join(dir, "sda.raw")); len(got) != 2<<20 || strings.Trim(string(got), "\x00") != "" {
		t.Fatalf("the blank disk came out as %d bytes", len(got))
	}
	if r := run(t, dir, nil, "convert", "bad.xva", "sdb.raw", "--disk", "sdb"); r.code != exitCorrupt {
		t.Fatalf("the damaged disk: exit %d", r.code)
	}
	for _, c := range [][]string{
		{"convert", "vm/sda.raw", "-", "--disk-format", "raw"},          // an image to standard output
		{"convert", "vm/sda.raw", "boot.qcow2", "--disk-format", "raw"}, // named as another format
		{"convert", "vm/sda.raw", "sda.raw", "--force"},                 // an archive's flag
		{"convert", "vm/sda.raw", "x.vhd", "--format", "xapi"},          // an archive's flag
	} {
		if r := run(t, dir, nil, c...); r.code != exitUsage {
			t.Errorf("xva %s: exit %d, want 2\n%s", strings.Join(c, " "), r.code, r.stderr)
		}
	}
	for _, name := range []string{"-", "boot.qcow2", "x.vhd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("a refused convert left %s", name)
		}
	}
}
