// Package testutil holds what tests in several packages need of the
// machine: tools on PATH, and loop devices. Only tests import it.
//
// It imports nothing of the module; only tests import it.
package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// NeedTools skips t unless every tool is installed.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// Loop attaches a loop device to the file at path for the rest of the
// test. It skips t when not root or when no loop device can be had.
func Loop(t testing.TB, path string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	out, err := exec.Command("losetup", "-f", "--show", path).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}
