package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/tarx"
	"github.com/xva-tools/xva/internal/testutil"
)

// entries lists dir, "" for none.
func entries(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// hasTemp reports whether dir holds one of our temporary names.
func hasTemp(dir string) bool {
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if strings.Contains(e.Name(), ".xva-tmp-") {
			return true
		}
	}
	return false
}

// interrupt starts xva, sends SIGINT once a temporary output appears in
// watch, and returns the exit code, stderr and how long the exit took.
func interrupt(t *testing.T, dir, watch string, stdin io.Reader, args ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := exec.Command(xvaBin, args...)
	cmd.Dir, cmd.Stdin = dir, stdin
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !hasTemp(watch) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no temporary output appeared in %s", watch)
		}
		time.Sleep(2 * time.Millisecond)
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), errb.String(), time.Since(sent)
}

func TestInterruptLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	vm := fixtures.VM{Name: "big", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 384 << 20, Seed: 901, Data: 1, MaxRegion: 8 << 20}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	check := func(what string, code int, stderr string, took time.Duration, want string) {
		t.Helper()
		if code != exitFailure || !strings.Contains(stderr, "interrupted") {
			t.Fatalf("%s: exit %d after SIGINT\n%s", what, code, stderr)
		}
		if got := entries(t, dir); got != want {
			t.Fatalf("%s: left %q, want %q", what, got, want)
		}
		t.Logf("%s: exited %v after SIGINT", what, took)
	}
	code, stderr, took := interrupt(t, dir, dir, nil, "pack", "--level", "9", "vm", "a.xva")
	check("pack", code, stderr, took, "vm")
	code, stderr, took = interrupt(t, dir, dir, nil, "pack", "--level", "9", "--dir", "vm", "adir")
	check("pack --dir", code, stderr, took, "vm")

	mustRun(t, dir, nil, "pack", "--level", "1", "vm", "a.xva")
	code, stderr, took = interrupt(t, dir, dir, nil, "unpack", "a.xva", "out")
	check("unpack", code, stderr, took, "a.xva vm")

	// An unpack blocked reading a pipe that never delivers the rest cannot
	// unwind by itself; it must still exit promptly and clean up.
	f, err := os.Open(filepath.Join(dir, "a.xva"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pr, pw := io.Pipe()
	go io.CopyN(pw, f, st.Size()/3)
	code, stderr, took = interrupt(t, dir, dir, pr, "unpack", "-", "out")
	pw.Close()
	check("unpack from a stalled pipe", code, stderr, took, "a.xva vm")
	if took > graceTime+2*time.Second {
		t.Fatalf("took %v to exit", took)
	}
}

// tmpfs mounts a small tmpfs for the test, as root only.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	os.Mkdir(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

func TestOutOfSpace(t *testing.T) {
	small := tmpfs(t, "8m")
	dir := t.TempDir()
	vm := fixtures.VM{Name: "full", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 64 << 20, Seed: 902, Data: 0.9}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "--level", "1", "vm", "a.xva")
	for _, args := range [][]string{
		{"unpack", "a.xva", filepath.Join(small, "out")},
		{"unpack", "--disk-format", "vhd", "a.xva", filepath.Join(small, "out")},
		{"pack", "vm", filepath.Join(small, "b.xva")},
		{"pack", "--dir", "vm", filepath.Join(small, "bdir")},
		{"pack", "--format", "xapi", "vm", filepath.Join(small, "c.xva")},
		{"convert", "a.xva", filepath.Join(small, "d.xva")},
	} {
		r := run(t, dir, nil, args...)
		if r.code != exitFailure || !strings.Contains(r.stderr, "no space left on device") || !strings.Contains(r.stderr, "hint:") {
			t.Fatalf("xva %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		if strings.Contains(r.stderr, ".xva-tmp-") {
			t.Errorf("the message names a temporary file:\n%s", r.stderr)
		}
		if got := entries(t, small); got != "" {
			t.Fatalf("xva %s left %q behind", strings.Join(args, " "), got)
		}
	}
}

// A device that fails part way (a loop device over a file on a full
// filesystem) is reported with the offset reached.
func TestDeviceWriteFailureNamesOffset(t *testing.T) {
	small := tmpfs(t, "4m")
	backing := filepath.Join(small, "backing")
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(backing, 64<<20) // sparse: writes fail once 4 MiB are used
	dev := testutil.Loop(t, backing)
	dir := t.TempDir()
	vm := fixtures.VM{Name: "dev", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 32 << 20, Seed: 903, Data: 0.9}}}
	vm.WriteDir(filepath.Join(dir, "vm"))
	mustRun(t, dir, nil, "pack", "--level", "1", "vm", "a.xva")
	r := run(t, dir, nil, "unpack", "a.xva", "out", "--disk", "sda="+dev)
	if r.code != exitFailure || !strings.Contains(r.stderr, dev+" at offset ") || !strings.Contains(r.stderr, "written up to offset") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if entries(t, dir) != "a.xva vm" {
		t.Fatalf("left %q", entries(t, dir))
	}
}

func TestGzipBombStopsAt1e9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: packs a disk over 1e9 bytes and inflates a chunk past it; make test runs it")
	}
	dir := t.TempDir()
	vm := fixtures.VM{Name: "bomb", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: chunk.ChunkSize + 4096, Seed: 904, Data: 0.0001, MaxRegion: 4096}}}
	vm.WriteDir(filepath.Join(dir, "vm"))
	mustRun(t, dir, nil, "pack", "--dir", "vm", "a")
	// Chunk 0 must hold exactly 1e9 bytes; this one inflates to 1e9 + 1.
	f, err := os.Create(filepath.Join(dir, "a", "sda", "chunk-000000000.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chunk.WriteGzipChunk(context.Background(), f, holes{}, 0, chunk.ChunkSize+1, chunk.GzipOptions{Level: 1}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The tar form too, as GNU tar writes it.
	tar := exec.Command("tar", "-cf", filepath.Join(dir, "a.xva"), "-C", "a", "ova.xml", "sda/chunk-000000000.gz", "sda/chunk-000000001.gz")
	tar.Dir = dir
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	for _, in := range []string{"a", "a.xva"} {
		r := run(t, dir, nil, "unpack", in, "out")
		if r.code != exitCorrupt || !strings.Contains(r.stderr, "sda/chunk-000000000.gz") || !strings.Contains(r.stderr, "past its expected size") {
			t.Fatalf("unpack %s: exit %d\n%s", in, r.code, r.stderr)
		}
		if left := entries(t, dir); left != "a a.xva vm" {
			t.Fatalf("unpack %s left %q", in, left)
		}
	}
}

// holes is a disk of zeros, for a chunk that compresses to almost nothing.
type holes struct{}

func (holes) Fill([]byte, int64) (bool, error) { return false, nil }

// hostileTar writes a tar of the given members.
func hostileTar(t *testing.T, path string, members [][2]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tarx.NewWriter(&buf)
	for _, m := range members {
		if err := tw.WriteHeader(m[0], int64(len(m[1])), 0); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m[1]))
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func legacyDoc(source string) string {
	return `<?xml version="1.0"?><appliance version="0.1"><vm name="vm"><label>x</label><config mem_set="268435456" vcpus="1"/>` +
		`<vbd device="sda" function="root" mode="w" vdi="v"/></vm>` +
		`<vdi name="v" size="5" source="` + source + `" type="dir-gzipped-chunks" variety="system"/></appliance>`
}

func TestPathTraversalWritesNothingOutside(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o755)
	abs := filepath.Join(dir, "abs")
	var gz memChunk
	chunk.WriteGzipChunk(context.Background(), &gz, fill("hello"), 0, 5, chunk.GzipOptions{Level: 1})
	data := string(gz.b)
	cases := map[string][][2]string{
		"dotdot source": {{"ova.xml", legacyDoc("file://../escape")}, {"../escape/chunk-000000000.gz", data}},
		"absolute":      {{"ova.xml", legacyDoc("file://" + abs)}, {abs + "/chunk-000000000.gz", data}},
		"stray member":  {{"ova.xml", legacyDoc("file://sda")}, {"sda/chunk-000000000.gz", data}, {"../../evil", "x"}},
		"device name":   {{"ova.xml", strings.Replace(legacyDoc("file://sda"), `device="sda"`, `device="../evil"`, 1)}, {"sda/chunk-000000000.gz", data}},
	}
	for name, members := range cases {
		hostileTar(t, filepath.Join(dir, "h.xva"), members)
		r := run(t, work, nil, "unpack", "../h.xva", "out")
		if r.code != exitCorrupt {
			t.Fatalf("%s: exit %d\n%s", name, r.code, r.stderr)
		}
		if got := entries(t, work); got != "" {
			t.Fatalf("%s: left %q in the working directory", name, got)
		}
		if got := entries(t, dir); got != "h.xva work" {
			t.Fatalf("%s: wrote outside: %q", name, got)
		}
	}

	// A directory archive whose disk directory is a symlink elsewhere.
	outside := filepath.Join(dir, "outside")
	os.Mkdir(outside, 0o755)
	arch := filepath.Join(dir, "arch")
	os.Mkdir(arch, 0o755)
	os.WriteFile(filepath.Join(arch, "ova.xml"), []byte(legacyDoc("file://sda")), 0o644)
	os.WriteFile(filepath.Join(outside, "chunk-000000000.gz"), []byte(data), 0o644)
	os.Symlink(outside, filepath.Join(arch, "sda"))
	if r := run(t, work, nil, "unpack", "../arch", "out"); r.code != exitCorrupt || !strings.Contains(r.stderr, "symlink") {
		t.Fatalf("symlinked disk directory: exit %d\n%s", r.code, r.stderr)
	}

	// OUTDIR a symlink to an empty directory: never written through.
	target := filepath.Join(dir, "target")
	os.Mkdir(target, 0o755)
	os.Symlink(target, filepath.Join(work, "link"))
	hostileTar(t, filepath.Join(dir, "ok.xva"), cases["stray member"][:2])
	if r := run(t, work, nil, "unpack", "../ok.xva", "link"); r.code == exitOK {
		t.Fatal("unpacked through a symlink")
	}
	if got := entries(t, target); got != "" {
		t.Fatalf("wrote %q through the symlink", got)
	}
}

// memChunk is an in-memory chunk.ChunkFile.
type memChunk struct{ b []byte }

func (m *memChunk) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *memChunk) WriteAt(p []byte, off int64) (int, error) {
	return copy(m.b[off:], p), nil
}

// fill serves a string as a chunk.Filler.
type fill string

func (f fill) Fill(buf []byte, off int64) (bool, error) {
	copy(buf, f[off:])
	return true, nil
}
