package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
)

// wantHint requires a failure whose stderr has the error and then a hint
// line holding each of the given texts.
func wantHint(t *testing.T, what string, r result, texts ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("%s succeeded", what)
	}
	_, h, ok := strings.Cut(r.stderr, "xva: hint: ")
	if !ok {
		t.Fatalf("%s: no hint:\n%s", what, r.stderr)
	}
	for _, s := range texts {
		if !strings.Contains(h, s) {
			t.Fatalf("%s: the hint does not say %q:\n%s", what, s, r.stderr)
		}
	}
}

func TestErrorsSayWhatToDoNext(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	uploadVM.WriteDir(filepath.Join(dir, "vm"))
	mustRun(t, dir, nil, "pack", "vm", "legacy.xva")

	// A legacy archive sent as it is to a current host.
	r := remote(t, dir, "secret", "upload", "--as-is", "legacy.xva", "--url", s.URL, "--ca-cert", ca)
	wantHint(t, "legacy upload --as-is", r, "cannot import version 0.1", "xva convert --format xapi", "drop --as-is")
	// ... and info says so up front.
	if out := mustRun(t, dir, nil, "info", "legacy.xva"); !strings.Contains(out, "hint: current XenServer/XCP-ng hosts cannot import version 0.1") {
		t.Fatalf("info of a legacy archive gives no hint:\n%s", out)
	}

	// An unpack target that exists.
	os.MkdirAll(filepath.Join(dir, "full", "x"), 0o755)
	wantHint(t, "unpack into a full directory", run(t, dir, nil, "unpack", "legacy.xva", "full"), "never overwrites", "empty directory")
	wantHint(t, "pack over a file", run(t, dir, nil, "pack", "vm", "legacy.xva"), "--force")

	// Something that is not an archive.
	wantHint(t, "info of a raw image", run(t, dir, nil, "info", "vm/sda.raw"), "tar file", "VHD")

	// A wrong password, an untrusted certificate.
	wantHint(t, "wrong password", remote(t, dir, "nope", "upload", "legacy.xva", "--url", s.URL, "--ca-cert", ca), "password is wrong", "--password-file")
	wantHint(t, "untrusted certificate", remote(t, dir, "secret", "upload", "legacy.xva", "--url", s.URL), "--ca-cert", "--insecure")
}

// A disk larger than the device it is sent to.
func TestTooSmallDeviceHint(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.img")
	os.WriteFile(small, nil, 0o644)
	os.Truncate(small, 1<<20)
	dev := testutil.Loop(t, small)
	vm := fixtures.VM{Name: "big", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 3 << 20, Seed: 71, Data: 0.5}}}
	vm.WriteDir(filepath.Join(dir, "vm"))
	mustRun(t, dir, nil, "pack", "vm", "a.xva")
	for _, format := range []string{"raw", "vhd"} {
		r := run(t, dir, nil, "unpack", "--disk-format", format, "--disk", "sda="+dev, "a.xva", "out-"+format)
		wantHint(t, "unpack onto a small device as "+format, r, "at least as large as the disk", "--create-lv")
	}
}
