//go:build linux

package procmem

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
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

// The children lists and the scan of /proc must find the same descendants.
func TestChildrenListsMatchTheScan(t *testing.T) {
	if _, err := os.Stat("/proc/thread-self/children"); err != nil {
		t.Skip("this kernel keeps no children lists (CONFIG_PROC_CHILDREN)")
	}
	cmd := exec.Command("sh", "-c", "sleep 5 & sleep 5 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var listed []int
	for range 100 {
		if listed = children(cmd.Process.Pid); len(listed) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	scanned := scanChildren()(cmd.Process.Pid)
	slices.Sort(listed)
	slices.Sort(scanned)
	if len(listed) != 2 || !slices.Equal(listed, scanned) {
		t.Fatalf("children lists %v, scan %v", listed, scanned)
	}
	for _, pid := range listed {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
