package disk

import (
	"bytes"
	"io"
)

// zeros is compared against with bytes.Equal, which runs as vectorised
// memequal: an order of magnitude faster than a byte loop.
var zeros = make([]byte, 1<<20)

// IsZero reports whether every byte of p is zero.
func IsZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeros))
		if !bytes.Equal(p[:n], zeros[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// ZeroBlock is the granularity at which sinks turn zero runs into holes.
const ZeroBlock = 4096

// DataRuns calls fn for each run of p (which starts at disk offset off) that
// is not made of whole all-zero ZeroBlock-aligned blocks. Zero runs shorter
// than a block, or not aligned to one, are kept as data.
func DataRuns(p []byte, off int64, fn func(p []byte, off int64) error) error {
	start := -1 // start index in p of the pending data run
	i := 0
	for i < len(p) {
		// The block containing off+i ends at the next ZeroBlock boundary.
		end := i + ZeroBlock - int((off+int64(i))%ZeroBlock)
		if end > len(p) {
			end = len(p)
		}
		whole := end-i == ZeroBlock
		if whole && IsZero(p[i:end]) {
			if start >= 0 {
				if err := fn(p[start:i], off+int64(start)); err != nil {
					return err
				}
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i = end
	}
	if start >= 0 {
		return fn(p[start:], off+int64(start))
	}
	return nil
}

// WriteUnits writes p, which starts at disk offset off, into an image made
// of allocation units of unit bytes (VHD and VHDX blocks, VMDK grains):
// the runs DataRuns keeps, cut at unit boundaries, each non-zero piece at
// where(u) (the file offset of unit u, allocated by where when it has none)
// plus its offset in the unit. A unit p leaves all zero is never allocated.
func WriteUnits(w io.WriterAt, p []byte, off, unit int64, where func(u int64) (int64, error)) error {
	return DataRuns(p, off, func(run []byte, at int64) error {
		for len(run) > 0 {
			u := at / unit
			n := min(int64(len(run)), (u+1)*unit-at)
			if !IsZero(run[:n]) { // a short zero run DataRuns kept
				pos, err := where(u)
				if err != nil {
					return err
				}
				if _, err := w.WriteAt(run[:n], pos+at%unit); err != nil {
					return err
				}
			}
			run, at = run[n:], at+n
		}
		return nil
	})
}
