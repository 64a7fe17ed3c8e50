package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make demo shows, in order: a pack for current hosts, info, verify, a
// corruption caught with exit 3, an unpack whose disks match the
// originals, and conversions.
func TestMakeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make demo builds xva and packs a 320 MiB VM (about 10 s); make test runs it")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	demo := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command("make", "-s", "demo", "DEMO="+demo)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	rest := string(out)
	for _, step := range []string{
		"wrote " + demo + "/web.xva (xapi format)",
		"export_vsn:  2",
		"OK       " + demo + "/web.xva: xapi, 2 disks",
		"CORRUPT  " + demo + "/damaged.xva: 1 problem",
		"(exit code 3: corruption)",
		"unpacked/sda.raw: OK",
		"unpacked/sdb.raw: OK",
		"wrote " + demo + "/web.xva.zst (xapi format)",
		"wrote " + demo + "/web-legacy.xva (legacy format)",
	} {
		i := strings.Index(rest, step)
		if i < 0 {
			t.Fatalf("make demo does not show %q (in order):\n%s", step, out)
		}
		rest = rest[i+len(step):]
	}
	if c := exec.Command("zstd", "-tq", filepath.Join(demo, "web.xva.zst")); c.Run() != nil {
		t.Error("zstd -t refuses the demo's web.xva.zst")
	}
}
