// Package fuzzutil holds what the fuzz targets share: a check that a
// parser's allocation stays proportional to its input, so that a small
// hostile input cannot make it ask for gigabytes.
//
// It imports nothing of the module; only tests import it.
package fuzzutil

import (
	"runtime"
	"testing"
)

// Bounded runs fn and fails t if it allocated more than limit bytes in
// all (the heap's total allocation, which other goroutines of the same
// run count towards too).
func Bounded(t testing.TB, limit uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("allocated %d bytes, more than the %d allowed for this input", got, limit)
	}
}
