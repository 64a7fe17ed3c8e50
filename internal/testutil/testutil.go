// Package testutil holds what tests in several packages need of the
// machine (tools on PATH, loop devices) and test data. Only tests import it.
//
// It imports nothing of the module; only tests import it.
package testutil

import (
	"math/rand/v2"
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

// Image is test data for a disk: size bytes of random data with zero
// stretches, the runs up to maxRun long, the same for the same seed.
func Image(size int64, seed uint64, maxRun int64) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for off := int64(0); off < size; {
		n := min(size-off, 1+r.Int64N(maxRun))
		if r.IntN(3) > 0 {
			for i := off; i < off+n; i++ {
				b[i] = byte(r.Uint32())
			}
		}
		off += n
	}
	return b
}
