package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An xapi archive extracted and tarred again with tar(1) has its members in
// readdir order and directory entries: verify says so once, with the way
// out; unpack reads it anyway; convert repairs it.
func TestRetarredArchive(t *testing.T) {
	dir, sums := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	x := filepath.Join(dir, "x")
	for _, c := range [][]string{{"mkdir", x}, {"tar", "-C", x, "-xf", filepath.Join(dir, "a.xva")},
		{"tar", "-C", x, "-cf", filepath.Join(dir, "re.xva"), "."}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	r := run(t, dir, nil, "verify", "re.xva")
	if r.code != exitCorrupt || !strings.Contains(r.stdout, "1 problem") || !strings.Contains(r.stdout, "xva convert re.xva fixed.xva") ||
		strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("verify of a re-tarred archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, " : ") {
		t.Errorf("an empty field: %s", r.stdout)
	}
	checkDoc(t, "verify", run(t, dir, nil, "verify", "--json", "re.xva").stdout)
	r = run(t, dir, nil, "unpack", "re.xva", "vm")
	if r.code != 0 || !strings.Contains(r.stderr, "out of order") {
		t.Fatalf("unpack of a re-tarred archive: exit %d\n%s", r.code, r.stderr)
	}
	checkDisks(t, filepath.Join(dir, "vm"), sums)
	mustRun(t, dir, nil, "convert", "re.xva", "fixed.xva")
	mustRun(t, dir, nil, "verify", "fixed.xva")
	// The extracted directory converts too.
	mustRun(t, dir, nil, "convert", "x", "fixed2.xva")
	mustRun(t, dir, nil, "verify", "fixed2.xva")
	// An archive in order gets no note.
	if r := run(t, dir, nil, "unpack", "fixed.xva", "vm2"); r.code != 0 || strings.Contains(r.stderr, "order") {
		t.Errorf("unpack of an archive in order: exit %d\n%s", r.code, r.stderr)
	}
}
