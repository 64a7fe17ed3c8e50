package procmem

import (
	"os/exec"
	"testing"
)

// A shell whose child holds 64 MiB must be charged at least that, and a
// small command much less, whatever this process holds.
func TestRunSeesTheChildsPeak(t *testing.T) {
	ballast := make([]byte, 128<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	big, err := Run(exec.Command("sh", "-c", "head -c 67108864 /dev/zero | tail -c 67108864 > /dev/null; sleep 0.05"))
	if err != nil {
		t.Fatal(err)
	}
	small, err := Run(exec.Command("sh", "-c", "sleep 0.05"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("big %d MiB, small %d MiB, ballast %d", big>>20, small>>20, ballast[len(ballast)-1])
	if big < 64<<20 || small > 32<<20 {
		t.Fatalf("peaks %d and %d bytes", big, small)
	}
}
