package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xva-tools/xva/fixtures"
)

// stalled starts xva reading the first third of archive from a pipe that
// then delivers nothing, and returns once its temporary output exists in
// dir; stop ends it with sig.
func stalled(t *testing.T, dir, archive string, args ...string) (stop func(syscall.Signal) string) {
	t.Helper()
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go pw.Write(data[:len(data)/3])
	cmd := exec.Command(xvaBin, args...)
	cmd.Dir, cmd.Stdin = dir, pr
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A temporary name is made under a pending name ("~" at its end) and
	// takes its own once locked: wait for that.
	deadline := time.Now().Add(30 * time.Second)
	for len(temps(t, dir)) == 0 || strings.HasSuffix(temps(t, dir)[0], "~") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("xva %v made no temporary output", args)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return func(sig syscall.Signal) string {
		cmd.Process.Signal(sig)
		pw.Close() // before Wait, which waits for the copy into stdin
		cmd.Wait()
		return errb.String()
	}
}

// temps lists the temporary names in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, e := range strings.Fields(entries(t, dir)) {
		if strings.Contains(e, ".xva-tmp-") {
			out = append(out, e)
		}
	}
	return out
}

// What a run killed with SIGKILL leaves (it cannot clean up) is named and
// removed by the next run writing the same output; the temporary output of
// a run still going is left alone.
func TestLeftoversOfKilledRuns(t *testing.T) {
	dir := t.TempDir()
	vm := fixtures.VM{Name: "big", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 64 << 20, Seed: 902, Data: 1, MaxRegion: 4 << 20}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "a.xva")
	archive := filepath.Join(dir, "a.xva")

	// unpack (a temporary directory) and convert (a temporary file).
	for _, c := range []struct{ out string }{{"out"}, {"b.xva"}} {
		args := []string{"unpack", "-", c.out}
		again := []string{"unpack", "a.xva", c.out}
		if strings.HasSuffix(c.out, ".xva") {
			args = []string{"convert", "-", c.out}
			again = []string{"convert", "a.xva", c.out}
		}
		stop := stalled(t, dir, archive, args...)
		// A second run into the same place while the first is alive.
		r := run(t, dir, nil, again...)
		left := temps(t, dir)
		if r.code != 0 || len(left) != 1 || !strings.Contains(r.stderr, left[0]) || !strings.Contains(r.stderr, "still running") {
			t.Fatalf("xva %v beside a running one: exit %d, temporaries %v\n%s", again, r.code, left, r.stderr)
		}
		stop(syscall.SIGKILL)
		if got := temps(t, dir); len(got) != 1 || got[0] != left[0] {
			t.Fatalf("after SIGKILL: temporaries %v", got)
		}
		os.RemoveAll(filepath.Join(dir, c.out))
		r = run(t, dir, nil, again...)
		if r.code != 0 || !strings.Contains(r.stderr, "removed "+left[0]) || !strings.Contains(r.stderr, "killed") {
			t.Fatalf("xva %v after a killed run: exit %d\n%s", again, r.code, r.stderr)
		}
		if got := temps(t, dir); len(got) != 0 {
			t.Fatalf("%v still there", got)
		}
	}
	// A run that ends normally, even interrupted, leaves nothing to report.
	stop := stalled(t, dir, archive, "unpack", "-", "out2")
	stop(syscall.SIGINT)
	if r := run(t, dir, nil, "unpack", "a.xva", "out2"); r.code != 0 || strings.Contains(r.stderr, "removed") {
		t.Fatalf("after an interrupted run: exit %d\n%s", r.code, r.stderr)
	}
}
