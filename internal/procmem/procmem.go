// Package procmem measures the peak memory of a running command and its
// children on Linux, from /proc.
//
// The rusage of an exited process will not do: Linux folds the parent's
// peak resident set at fork into the child's ru_maxrss, so a measuring
// process that once held a large buffer is charged to every child.
// VmHWM belongs to each process's own address space.
//
// It imports nothing of the module.
package procmem

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Interval is how often a running command is sampled. Growth in its last
// moments may be missed; for the streaming work measured here the peak is
// reached early and held.
const Interval = 10 * time.Millisecond

// Run starts cmd, waits for it, and returns the largest VmHWM seen of it
// or any of its descendants: the peak of the largest single process.
func Run(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
			for _, pid := range tree(cmd.Process.Pid) {
				peak = max(peak, hwm(pid))
			}
		}
	}
}

// hwm reads a process's peak resident set, 0 if it is gone.
func hwm(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// tree lists root and its descendants. It follows each thread's children
// list, a few small reads for the handful of processes measured: a scan of
// all of /proc on every tick took a third of a core from the command being
// measured. Kernels built without those lists get the scan.
func tree(root int) []int {
	kids := children
	if _, err := os.Stat("/proc/thread-self/children"); err != nil {
		kids = scanChildren()
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, kids(out[i])...)
	}
	return out
}

// children reads the processes forked by any thread of pid.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// scanChildren maps every process to its children from each one's parent.
func scanChildren() func(int) []int {
	entries, _ := os.ReadDir("/proc")
	m := map[int][]int{}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if pp := parent(pid); pp > 0 {
				m[pp] = append(m[pp], pid)
			}
		}
	}
	return func(pid int) []int { return m[pid] }
}

// parent reads a process's parent id from /proc/PID/stat, whose second
// field (the command name, in parentheses) may itself hold spaces.
func parent(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}
