package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
)

// runOnTerminal runs xva in dir with stdout (and stderr, if both) on a
// fresh terminal, and returns the exit code, what stderr got when it was
// not the terminal, and what the terminal showed.
func runOnTerminal(t *testing.T, dir string, both bool, args ...string) (int, string, string) {
	t.Helper()
	m, s := openPTY(t)
	cmd := exec.Command(xvaBin, args...)
	cmd.Dir, cmd.Stdout = dir, s
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if both {
		cmd.Stderr = s
	}
	var shown bytes.Buffer
	done := make(chan struct{})
	go func() { shown.ReadFrom(m); close(done) }()
	err := cmd.Run()
	s.Close()
	<-done // the master reads EIO once the slave is closed everywhere
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, errb.String(), shown.String()
}

// setupSectors writes sda.img and sdb.img, whole-sector disks as a pool's
// VDIs are (an xapi archive holds whole sectors), and returns their hashes.
func setupSectors(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	sums := map[string]string{}
	for i, d := range []fixtures.Disk{{Size: 3 << 20, Seed: 1}, {Size: 1<<20 + 4096, Seed: 2}} {
		sum, err := d.Write(filepath.Join(dir, fixtures.Device(i)+".img"))
		if err != nil {
			t.Fatal(err)
		}
		sums[fixtures.Device(i)] = sum
	}
	return dir, sums
}

// A VM given by --disk flags is packed in the xapi generation; --format
// legacy writes version 0.1; a VM directory keeps its own generation.
func TestPackDefaultsToXapi(t *testing.T) {
	dir, sums := setupSectors(t)
	out := mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	if !strings.Contains(out, "(xapi format)") {
		t.Fatalf("pack from --disk flags: %s", out)
	}
	if info := mustRun(t, dir, nil, "info", "a.xva"); !strings.Contains(info, "xapi format") || !strings.Contains(info, "export_vsn:") {
		t.Fatalf("info of the default pack:\n%s", info)
	}
	// Real tar reads it: xapi members, no chunk directories.
	list, err := exec.Command("tar", "-tf", filepath.Join(dir, "a.xva")).Output()
	if err != nil || !strings.Contains(string(list), "Ref:") || !strings.Contains(string(list), ".xxhash") {
		t.Fatalf("tar -t: %v\n%s", err, list)
	}
	mustRun(t, dir, nil, "unpack", "a.xva", "vm")
	checkDisks(t, filepath.Join(dir, "vm"), sums)

	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "old.xva")
	list, err = exec.Command("tar", "-xOf", filepath.Join(dir, "old.xva"), "ova.xml").Output()
	if err != nil || !strings.Contains(string(list), `<appliance version="0.1">`) {
		t.Fatalf("--format legacy wrote: %v\n%s", err, list)
	}
	// A VM directory repacks in its own generation, whichever it is.
	mustRun(t, dir, nil, "unpack", "old.xva", "oldvm")
	for vm, want := range map[string]string{"vm": "xapi", "oldvm": "legacy"} {
		out := mustRun(t, dir, nil, "pack", vm, vm+".xva")
		if !strings.Contains(out, "("+want+" format)") {
			t.Errorf("pack %s/: %s, want %s", vm, out, want)
		}
	}
	// The directory form is legacy only, and must be asked for.
	r := run(t, dir, nil, "pack", "--disk", "sda=sda.img", "d/")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--format legacy") {
		t.Fatalf("pack --disk ... d/: exit %d\n%s", r.code, r.stderr)
	}
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "d/")
	if _, err := os.Stat(filepath.Join(dir, "d", "sda", "chunk-000000000.gz")); err != nil {
		t.Fatal(err)
	}
}

// A name ending in .gz or .zst asks for that compression; a --compress
// that contradicts it, --level where there is no gzip, --memory 0,
// --vcpus 0 and a disk from standard input are usage errors.
func TestPackRefusesWhatItCannotDo(t *testing.T) {
	dir, sums := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva.zst")
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva.gz")
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--compress", "gzip", "--level", "1", "fast.xva.gz")
	if err := exec.Command("zstd", "-tq", filepath.Join(dir, "a.xva.zst")).Run(); err != nil {
		t.Errorf("zstd -t a.xva.zst: %v", err)
	}
	for _, f := range []string{"a.xva.gz", "fast.xva.gz"} {
		if err := exec.Command("gzip", "-t", filepath.Join(dir, f)).Run(); err != nil {
			t.Errorf("gzip -t %s: %v", f, err)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.xva.gz"))
	fast, _ := os.ReadFile(filepath.Join(dir, "fast.xva.gz"))
	if bytes.Equal(a, fast) {
		t.Error("--level 1 with --compress gzip changed nothing")
	}
	mustRun(t, dir, nil, "unpack", "a.xva.zst", "vm")
	if got, _ := fixtures.HashFile(filepath.Join(dir, "vm", "sda.raw")); got != sums["sda"] {
		t.Error("the disk of a.xva.zst differs")
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"pack", "--disk", "sda=sda.img", "--compress", "gzip", "b.xva.zst"}, "contradicts"},
		{[]string{"pack", "--disk", "sda=sda.img", "--compress", "none", "b.xva.gz"}, "contradicts"},
		{[]string{"pack", "--disk", "sda=sda.img", "--level", "9", "b.xva"}, "--level"},
		{[]string{"pack", "--disk", "sda=sda.img", "--level", "9", "b.xva.zst"}, "--level"},
		{[]string{"pack", "--format", "legacy", "--disk", "sda=sda.img", "b.xva.zst"}, "needs --format xapi"},
		{[]string{"pack", "--memory", "0", "--disk", "sda=sda.img", "b.xva"}, "--memory"},
		{[]string{"pack", "--vcpus", "0", "--disk", "sda=sda.img", "b.xva"}, "--vcpus"},
		{[]string{"pack", "--disk", "sda=sda.img", "--disk", "sdb=-", "b.xva"}, "standard input"},
		{[]string{"pack", "--checksum", "md5", "--disk", "sda=sda.img", "b.xva"}, "--checksum"},
		{[]string{"convert", "--compress", "zstd", "a.xva.zst", "b.xva.gz"}, "contradicts"},
	} {
		r := run(t, dir, nil, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.says) {
			t.Errorf("xva %v: exit %d, want 2 saying %q\n%s", c.args, r.code, c.says, r.stderr)
		}
		if strings.Contains(r.stderr, "chunk:") {
			t.Errorf("xva %v: an internal prefix: %s", c.args, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "-")); err == nil {
		t.Error("a file named - was written")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "b.xva*")); len(m) > 0 {
		t.Errorf("refused commands left %v", m)
	}
}

// An archive is never written to a terminal.
func TestNoArchiveOnATerminal(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva")
	for _, args := range [][]string{
		{"pack", "--disk", "sda=sda.img", "-"},
		{"convert", "a.xva", "-"},
	} {
		code, stderr, shown := runOnTerminal(t, dir, false, args...)
		if code != exitUsage || !strings.Contains(stderr, "terminal") || len(shown) > 0 {
			t.Errorf("xva %v on a terminal: exit %d, %d bytes shown\n%s", args, code, len(shown), stderr)
		}
	}
}
