package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"
)

// --progress takes its mode as the next word or after '=', and alone means
// bar; the help says so.
func TestProgressFlagForms(t *testing.T) {
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva")
	for _, args := range [][]string{
		{"verify", "--progress", "plain", "a.xva"},
		{"--progress", "plain", "verify", "a.xva"},
		{"verify", "--progress=plain", "a.xva"},
	} {
		r := run(t, dir, nil, args...)
		if r.code != 0 || !strings.Contains(r.stderr, "xva: sda: ") || strings.Contains(r.stderr, "\x1b") {
			t.Errorf("xva %v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	// Alone, before an argument: bars.
	r := run(t, dir, nil, "verify", "--progress", "a.xva")
	if r.code != 0 || !strings.Contains(r.stderr, "100 %") {
		t.Errorf("verify --progress a.xva: exit %d\n%s", r.code, r.stderr)
	}
	// A word after -- is an argument, whatever it says.
	if r := run(t, dir, nil, "verify", "--progress", "--", "plain"); r.code != exitFailure || !strings.Contains(r.stdout, "ERROR    plain") {
		t.Errorf("verify --progress -- plain: exit %d\n%s", r.code, r.stderr)
	}
	if help := mustRun(t, dir, nil, "verify", "--help"); !strings.Contains(help, "--progress plain") {
		t.Errorf("the help does not show --progress plain:\n%s", help)
	}
}

// barsOn runs xva with stderr on a terminal of cols columns (0: one that
// reports no size, as some do) and returns what the terminal showed, with
// the cursor movements taken out, one redrawn line per line.
func barsOn(t *testing.T, dir string, cols uint16, args ...string) string {
	t.Helper()
	m, s := openPTY(t)
	if cols > 0 {
		setWinsize(t, s, cols)
	}
	cmd := exec.Command(xvaBin, args...)
	cmd.Dir, cmd.Stderr = dir, s
	var shown bytes.Buffer
	done := make(chan struct{})
	go func() { shown.ReadFrom(m); close(done) }()
	if err := cmd.Run(); err != nil {
		t.Fatalf("xva %v: %v", args, err)
	}
	s.Close()
	<-done
	clean := regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`).ReplaceAllString(shown.String(), "\n")
	return strings.ReplaceAll(clean, "\r", "\n")
}

// Bars are drawn on any terminal: one that reports no size gets 80
// columns; a narrow one gets fewer fields, never run together and never
// wider than the terminal. The archive figure counts the archive's bytes,
// compressed ones for a compressed archive.
func TestBarsOnEveryTerminal(t *testing.T) {
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	runTogether := regexp.MustCompile(`\S100 %|\d%\S|/s\S|B\d|\]\S|iB[a-z]`)
	for _, cols := range []uint16{0, 30, 40, 60, 80, 120} {
		out := fmt.Sprintf("b%d.xva.zst", cols)
		shown := barsOn(t, dir, cols, "convert", "a.xva", out)
		width := int(cols)
		if cols == 0 {
			width = 80
		}
		if !strings.Contains(shown, "sda ") || !strings.Contains(shown, "sdb ") || !strings.Contains(shown, "100 %") {
			t.Errorf("%d columns: no bars for both disks:\n%s", cols, shown)
		}
		for _, l := range strings.Split(shown, "\n") {
			if n := len([]rune(l)); n > width {
				t.Errorf("%d columns: a line of %d:\n%s", cols, n, l)
			}
			if m := runTogether.FindString(l); m != "" {
				t.Errorf("%d columns: fields run together (%q):\n%s", cols, m, l)
			}
		}
		if (cols >= 80 || cols == 0) && !strings.Contains(shown, " archive ") {
			t.Errorf("%d columns: no archive figure:\n%s", cols, shown)
		}
	}
	// Reading a compressed archive counts its compressed bytes: the two
	// disks' figures add up to the file, not to the tar inside.
	st, _ := os.Stat(filepath.Join(dir, "b120.xva.zst"))
	shown := barsOn(t, dir, 120, "unpack", "b120.xva.zst", "vm")
	var sum uint64
	for _, dev := range []string{"sda", "sdb"} {
		m := regexp.MustCompile(dev+` .* archive (\S+ \S+)`).FindAllStringSubmatch(shown, -1)
		if len(m) == 0 {
			t.Fatalf("no archive figure for %s:\n%s", dev, shown)
		}
		n, err := humanize.ParseBytes(m[len(m)-1][1])
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	tarSize, _ := os.Stat(filepath.Join(dir, "a.xva"))
	if sum > uint64(st.Size())*11/10 || sum < uint64(st.Size())*9/10 || uint64(tarSize.Size()) < sum*2 {
		t.Errorf("unpacking a %d-byte .zst (a %d-byte tar) counted %d archive bytes:\n%s", st.Size(), tarSize.Size(), sum, shown)
	}
}
