package zran

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

var errLimit = errors.New("output limit")

// inflateRaw decodes a raw DEFLATE stream with this package's decoder,
// up to its final block, giving up past limit bytes of output.
func inflateRaw(data []byte, limit int) ([]byte, error) {
	var out []byte
	br := newBitReader(bytes.NewReader(data), int64(len(data)))
	f := newInflater(br, func(p []byte) error {
		if len(out)+len(p) > limit {
			return errLimit
		}
		out = append(out, p...)
		return nil
	})
	f.reset(nil)
	for !f.final {
		if err := f.block(); err != nil {
			return out, err
		}
	}
	return out, f.emit()
}

// stdInflate decodes with compress/flate, up to limit+1 bytes.
func stdInflate(data []byte, limit int) ([]byte, error) {
	return io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), int64(limit)+1))
}

// sameAsFlate is the property both the test and the fuzz target
// check: this decoder errs, or gives what compress/flate gives.
func sameAsFlate(t testing.TB, data []byte) {
	const limit = 1 << 20
	var got []byte
	var err error
	fuzzutil.Bounded(t, 8<<20, func() { got, err = inflateRaw(data, limit) })
	if err != nil {
		return
	}
	want, werr := stdInflate(data, limit)
	if werr != nil || !bytes.Equal(got, want) {
		t.Fatalf("decoded %d bytes; compress/flate: %d bytes, %v (equal: %v)", len(got), len(want), werr, bytes.Equal(got, want))
	}
}

// TestInflateMatchesFlate compresses structured and random data with
// compress/flate at every level and decodes it.
func TestInflateMatchesFlate(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	inputs := [][]byte{nil, {0}, []byte("a"), bytes.Repeat([]byte("ab"), 100000), make([]byte, 300000), textData(200000, 1), mixedData(1<<20, 3)}
	for _, n := range []int{1, 100, 5000, 70000} {
		r := make([]byte, n)
		for i := range r {
			r[i] = byte(rng.IntN(1 + rng.IntN(256)))
		}
		inputs = append(inputs, r)
	}
	for _, in := range inputs {
		for level := flate.HuffmanOnly; level <= flate.BestCompression; level++ {
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, level)
			w.Write(in)
			w.Flush() // an empty stored block, as pigz makes
			w.Write(in[:len(in)/2])
			w.Close()
			got, err := inflateRaw(b.Bytes(), 4<<20)
			want := append(bytes.Clone(in), in[:len(in)/2]...)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("level %d, %d bytes: %d bytes, %v", level, len(in), len(got), err)
			}
		}
	}
}

// TestInflateRandom feeds random and mangled streams; the decoder must
// err or agree with compress/flate. Not parallel: the allocation
// check counts every goroutine's allocations.
func TestInflateRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	var good bytes.Buffer
	w, _ := flate.NewWriter(&good, 6)
	w.Write(textData(50000, 2))
	w.Close()
	for range 3000 {
		var in []byte
		if rng.IntN(2) == 0 {
			in = make([]byte, rng.IntN(200))
			for i := range in {
				in[i] = byte(rng.Uint32())
			}
		} else {
			in = bytes.Clone(good.Bytes())
			for range 1 + rng.IntN(3) {
				in[rng.IntN(len(in))] ^= byte(1 + rng.IntN(255))
			}
			in = in[:rng.IntN(len(in)+1)]
		}
		sameAsFlate(t, in)
	}
}

// TestDegenerate: hand-made blocks at the edges of the format.
func TestDegenerate(t *testing.T) {
	cases := map[string]struct {
		in   []byte
		want []byte // nil: must fail
	}{
		"empty fixed":      {[]byte{0x03, 0x00}, []byte{}},
		"empty stored":     {[]byte{0x01, 0x00, 0x00, 0xff, 0xff}, []byte{}},
		"stored abc":       {[]byte{0x01, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'}, []byte("abc")},
		"bad stored len":   {[]byte{0x01, 0x03, 0x00, 0xfc, 0xfe, 'a', 'b', 'c'}, nil},
		"reserved type":    {[]byte{0x07, 0x00}, nil},
		"distance too far": {farMatch(0), nil},
		"distance ok":      {farMatch(1), []byte("aaaa")},
		"truncated":        {[]byte{0x4b, 0x4c}, nil},
	}
	for name, c := range cases {
		got, err := inflateRaw(c.in, 1<<20)
		if c.want == nil {
			if err == nil {
				t.Errorf("%s: decoded %q", name, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		sameAsFlate(t, c.in)
	}
}

// bitWriter writes a DEFLATE bit stream by hand.
type bitWriter struct {
	b  []byte
	nb uint
}

// put appends the n low bits of v, least significant first.
func (w *bitWriter) put(v uint32, n uint) {
	for i := range n {
		if w.nb%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.nb % 8)
		w.nb++
	}
}

// code appends an n-bit Huffman code, most significant bit first.
func (w *bitWriter) code(c uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.put(c>>uint(i), 1)
	}
}

// farMatch is a fixed block of lits literals 'a' then a match of length
// 3 at distance 1: too far back unless there is a literal before it.
func farMatch(lits int) []byte {
	var w bitWriter
	w.put(1, 1) // final
	w.put(1, 2) // fixed Huffman
	for range lits {
		w.code(0x30+'a', 8)
	}
	w.code(1, 7) // length 3
	w.code(0, 5) // distance 1
	w.code(0, 7) // end of block
	return w.b
}

func FuzzInflate(f *testing.F) {
	for _, level := range []int{-2, 0, 1, 6, 9} {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, level)
		w.Write(textData(3000, uint64(level+3)))
		w.Flush()
		w.Write([]byte("tail tail tail"))
		w.Close()
		f.Add(b.Bytes())
	}
	f.Add([]byte{0x03, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		sameAsFlate(t, in)
	})
}
