package main

import (
	"strings"
	"testing"
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
