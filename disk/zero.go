package disk

import "bytes"

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
