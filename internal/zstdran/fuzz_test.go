package zstdran

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzDecode: whenever our decoder accepts a stream, klauspost's decodes
// it to the same bytes, and a restart from each point (one at every
// block) gives the same bytes as the whole decode. Output is capped, as
// a few bytes of RLE blocks make megabytes.
func FuzzDecode(f *testing.F) {
	for _, in := range [][]byte{nil, []byte("a"), textData(3000, 1), mixedData(64<<10, 2), textData(100<<10, 3)} {
		for _, args := range [][]string{{"-1"}, {"-3"}, {"-19"}, {"--no-check", "-5"}} {
			if out, err := zstdOut(in, args...); err == nil {
				f.Add(out)
			}
		}
		for _, l := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBestCompression} {
			w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithWindowSize(1<<15))
			f.Add(w.EncodeAll(in, nil))
		}
	}
	kp, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out int64
		b := &builder{ctx: ctx, x: &Index{csize: int64(len(in)), span: MinSpan}, gap: 1, progress: func(n int64) {
			if out += n; out > 8<<20 {
				cancel()
			}
		}}
		x, err := b.build(bytes.NewReader(in))
		if err != nil {
			return
		}
		want, err := kp.DecodeAll(in, nil)
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return
			}
			t.Fatalf("ours decodes %d bytes, klauspost fails: %v", x.Size(), err)
		}
		got := make([]byte, x.Size())
		if _, err := x.ReadAt(bytes.NewReader(in), got, 0); err != nil && len(got) > 0 {
			t.Fatalf("ReadAt of the whole: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ours decodes %d bytes, klauspost %d, and they differ", len(got), len(want))
		}
		for k, p := range x.points {
			span := make([]byte, x.spanEnd(k)-p.out)
			if _, err := x.ReadAt(bytes.NewReader(in), span, p.out); err != nil && len(span) > 0 {
				t.Fatalf("restart at point %d: %v", k, err)
			}
			if !bytes.Equal(span, want[p.out:x.spanEnd(k)]) {
				t.Fatalf("restart at point %d: different bytes", k)
			}
		}
	})
}

func zstdOut(in []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("zstd", append([]string{"-q", "-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	return cmd.Output()
}

// FuzzUnmarshal: any bytes are refused or accepted without a panic, and
// an accepted index marshals back to the same bytes. Each input is also
// tried with its trailing CRC-32 made right, so that the fuzzer gets past
// it to the checks of the structure.
func FuzzUnmarshal(f *testing.F) {
	z, err := zstdOut(mixedData(1<<20, 4), "-3", "--zstd=wlog=16")
	if err != nil {
		w, _ := zstd.NewWriter(nil, zstd.WithWindowSize(1<<16))
		z = w.EncodeAll(mixedData(1<<20, 4), nil)
	}
	x, err := Build(context.Background(), bytes.NewReader(z), int64(len(z)), MinSpan, nil)
	if err != nil {
		f.Fatal(err)
	}
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
