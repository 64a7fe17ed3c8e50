//go:build unix

package main

import (
	"os"
	"syscall"
)

// syncAll flushes every file system's dirty data (sync(2)).
func syncAll() { syscall.Sync() }

// cpuSeconds is the user and system CPU time of a finished process.
func cpuSeconds(ps *os.ProcessState) float64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
