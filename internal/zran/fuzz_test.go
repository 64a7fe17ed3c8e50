package zran

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzUnmarshal: any bytes are refused or accepted without a panic, and
// an accepted index marshals back to the same bytes. Each input is also
// tried with its trailing CRC-32 made right, so that the fuzzer gets past
// it to the checks of the structure.
func FuzzUnmarshal(f *testing.F) {
	gz := goGzip(f, textData(300<<10, 1), 6)
	x := build(f, gz, MinSpan)
	b, err := x.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:headerLen+4])
	f.Fuzz(func(t *testing.T, in []byte) {
		unmarshalRoundTrip(t, in)
		if len(in) >= 4 {
			fixed := bytes.Clone(in)
			binary.BigEndian.PutUint32(fixed[len(fixed)-4:], crc32.ChecksumIEEE(fixed[:len(fixed)-4]))
			unmarshalRoundTrip(t, fixed)
		}
	})
}

func unmarshalRoundTrip(t *testing.T, in []byte) {
	var x Index
	if err := x.UnmarshalBinary(in); err != nil {
		return
	}
	out, err := x.MarshalBinary()
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("an accepted index re-marshals to %d bytes (%v), not the %d it came from", len(out), err, len(in))
	}
}
