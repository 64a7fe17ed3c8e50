package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// internalPrefixes are the package prefixes errors carry inside xva.
var internalPrefixes = regexp.MustCompile(`\b(chunk|tarx|raw|vhd|lvm|ova|disk|fsutil|pipeline): `)

// checkMessage fails on what a user should never read: a package prefix,
// an empty field, "xva: xva:".
func checkMessage(t *testing.T, what, msg string) {
	t.Helper()
	if m := internalPrefixes.FindString(msg); m != "" {
		t.Errorf("%s: internal prefix %q in\n%s", what, m, msg)
	}
	for _, bad := range []string{"(disk ,", "disk , ", "offset )", "xva: xva:", " : "} {
		if strings.Contains(msg, bad) {
			t.Errorf("%s: %q in\n%s", what, bad, msg)
		}
	}
}

// Messages of damaged archives name the member, disk and offset they know,
// in plain words.
func TestMessagesArePlain(t *testing.T) {
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	good, _ := os.ReadFile(filepath.Join(dir, "a.xva"))
	flip := func(name string, b []byte, at int) {
		b = bytes.Clone(b)
		b[at] ^= 0xff
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	block := bytes.Index(good, []byte("00000001.xxhash")) - 2048 // inside block 1 of sda
	flip("block.xva", good, block)
	hash := bytes.Index(good, []byte("00000001.xxhash")) + 512 + 3 // inside its hash
	flip("hash.xva", good, hash)
	os.WriteFile(filepath.Join(dir, "short.xva"), good[:len(good)/2+100], 0o644)
	// A block whose checksum member is missing: its header renamed.
	noSum := bytes.Replace(good, []byte("00000001.xxhash"), []byte("00000001.xxhasX"), 1)
	os.WriteFile(filepath.Join(dir, "nosum.xva"), noSum, 0o644)
	for _, a := range []string{"block.xva", "hash.xva", "short.xva", "nosum.xva"} {
		for _, args := range [][]string{{"unpack", a, "out"}, {"verify", a}, {"convert", "--format", "legacy", a, "c.xva"}, {"info", a}} {
			r := run(t, dir, nil, args...)
			if args[0] == "info" && r.code == 0 {
				continue // info does not decode the data
			}
			if r.code != exitCorrupt {
				t.Errorf("xva %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
			checkMessage(t, fmt.Sprint(args), r.stdout+r.stderr)
		}
	}
	// -v logs the number of workers really used.
	r := run(t, dir, nil, "-v", "verify", "a.xva")
	if want := fmt.Sprintf("jobs=%d", runtime.NumCPU()); !strings.Contains(r.stderr, want) {
		t.Errorf("-v without --jobs: want %s in\n%s", want, r.stderr)
	}
	if r := run(t, dir, nil, "-v", "--jobs", "3", "verify", "a.xva"); !strings.Contains(r.stderr, "jobs=3") {
		t.Errorf("-v --jobs 3:\n%s", r.stderr)
	}
}
