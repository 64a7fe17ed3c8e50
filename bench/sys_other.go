//go:build !unix

package main

import "os"

// syncAll does nothing here: there is no sync(2).
func syncAll() {}

// cpuSeconds is the process's user and system CPU time.
func cpuSeconds(ps *os.ProcessState) float64 { return (ps.UserTime() + ps.SystemTime()).Seconds() }
