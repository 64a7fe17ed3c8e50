package xva

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestSpoolHoldsWhatWasWritten: a spool gives back exactly the bytes
// written and patched, in memory across slab boundaries and after it
// spills to a file, for writes of every size.
func TestSpoolHoldsWhatWasWritten(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{0, 1, spoolSlab - 1, 3*spoolSlab + 17, 64 << 20} {
		sp := &spool{limit: limit}
		var want []byte
		for len(want) < 5*spoolSlab {
			p := make([]byte, r.IntN(spoolSlab+spoolSlab/2))
			for i := range p {
				p[i] = byte(r.Uint32())
			}
			if n, err := sp.Write(p); n != len(p) || err != nil {
				t.Fatalf("limit %d: Write(%d) = %d, %v", limit, len(p), n, err)
			}
			want = append(want, p...)
			// Patch a run that may straddle slabs, as a chunk's header is.
			off := r.IntN(len(want))
			patch := bytes.Repeat([]byte{byte(off)}, min(r.IntN(3*spoolSlab), len(want)-off))
			if n, err := sp.WriteAt(patch, int64(off)); n != len(patch) || err != nil {
				t.Fatalf("limit %d: WriteAt(%d, %d) = %d, %v", limit, len(patch), off, n, err)
			}
			copy(want[off:], patch)
		}
		if _, err := sp.WriteAt([]byte{1}, int64(len(want))); sp.f == nil && err == nil {
			t.Fatalf("limit %d: a patch past the end was taken", limit)
		}
		var got bytes.Buffer
		if err := sp.writeTo(&got); err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("limit %d: read back %d bytes (%v), want %d, equal %v", limit, got.Len(), err, len(want), bytes.Equal(got.Bytes(), want))
		}
		if spilled := sp.f != nil; spilled != (len(want) > limit) {
			t.Fatalf("limit %d, %d bytes: spilled %v", limit, len(want), spilled)
		}
		sp.close()
	}
}
