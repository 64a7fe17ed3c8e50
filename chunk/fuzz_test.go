package chunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// fuzzMaxOut bounds the output a fuzz input may ask for, to keep each run
// quick; the 1e9 limit itself is tested in corrupt_test.go at the root.
const fuzzMaxOut = 4 << 20

// image rebuilds emitted data into a hash of the whole output, zeros filled
// in, checking that offsets only increase.
type image struct {
	h   hash.Hash
	pos int64
}

func newImage() *image { return &image{h: sha256.New()} }

func (im *image) emit(off int64, p []byte) error {
	if off < im.pos {
		return fmt.Errorf("emit at %d after %d", off, im.pos)
	}
	im.h.Write(make([]byte, off-im.pos))
	im.h.Write(p)
	im.pos = off + int64(len(p))
	return nil
}

func (im *image) sum(n int64) []byte {
	if n > im.pos {
		im.h.Write(make([]byte, n-im.pos))
		im.pos = n
	}
	return im.h.Sum(nil)
}

// stdGunzip is the reference: what compress/gzip (multi-member, like
// gzip -d) makes of in, up to limit+1 bytes.
func stdGunzip(in []byte, limit int64) (n int64, sum []byte, err error) {
	zr, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		return 0, nil, err
	}
	h := sha256.New()
	n, err = io.Copy(h, io.LimitReader(zr, limit+1))
	return n, h.Sum(nil), err
}

// FuzzReadGzipChunk compares the chunk reader with compress/gzip: what we
// accept, gzip decodes to the same bytes; what gzip decodes cleanly to the
// wanted length, we accept unless it claims to carry our index. Output
// never runs past want.
func FuzzReadGzipChunk(f *testing.F) {
	for _, b := range [][]byte{nil, []byte("hello"), make([]byte, 3*PieceSize+5)} {
		var m memFile
		WriteGzipChunk(context.Background(), &m, sliceFiller{b, true}, 0, int64(len(b)), GzipOptions{Level: 1})
		f.Add(m.b, int64(len(b)))
	}
	f.Fuzz(func(t *testing.T, in []byte, want int64) {
		if want > fuzzMaxOut || want < 0 && len(in) > fuzzMaxOut/1100 {
			return
		}
		im := newImage()
		var out, n int64
		var err error
		// Pieces of 1 MiB in flight and the inflater's read-ahead; never
		// anything a header merely claims.
		fuzzutil.Bounded(t, 32<<20+8*uint64(len(in)), func() {
			n, err = ReadGzipChunk(context.Background(), bytes.NewReader(in), want, func(off int64, p []byte) error {
				if off+int64(len(p)) > out {
					out = off + int64(len(p))
				}
				return im.emit(off, p)
			}, GzipOptions{Jobs: 2})
		})
		if want >= 0 && out > want {
			t.Fatalf("emitted %d bytes of a %d-byte chunk", out, want)
		}
		limit := want
		if want < 0 {
			limit = fuzzMaxOut
		}
		sn, ssum, serr := stdGunzip(in, limit)
		if err == nil {
			if want >= 0 && n != want {
				t.Fatalf("accepted %d bytes, want %d", n, want)
			}
			if serr != nil || sn != n || !bytes.Equal(ssum, im.sum(n)) {
				t.Fatalf("we accept %d bytes; compress/gzip reads %d (%v) or other bytes", n, sn, serr)
			}
			return
		}
		if !knownGzipError(err) {
			t.Fatalf("unclassified error: %v", err)
		}
		hasExtra := len(in) > 3 && in[3]&0x04 != 0
		if serr == nil && (want < 0 || sn == want) && !hasExtra && !foreignFlags(in) {
			t.Fatalf("compress/gzip reads %d good bytes, we fail: %v", sn, err)
		}
	})
}

// foreignFlags reports header flags that compress/gzip checks differently
// from the parallel reader (the optional header CRC-16 and reserved bits).
func foreignFlags(in []byte) bool { return len(in) > 3 && in[3]&0xe2 != 0 }

func knownGzipError(err error) bool {
	for _, k := range []error{ErrNotGzip, ErrChecksum, ErrInvalidData, ErrTooShort, ErrTooLong, ErrLength, ErrTrailing, io.ErrUnexpectedEOF, ErrBadIndex} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// fuzzMembers turns fuzz input into block members. Each record is a name
// selector, a block number, a length and the data; a checksum member's
// text is either taken from the input or computed, so the fuzzer can reach
// past the hash check.
func fuzzMembers(in []byte) []Member {
	var ms []Member
	for len(in) >= 4 {
		sel, num, n := in[0], int64(in[1]), int(binary.LittleEndian.Uint16(in[2:4]))
		in = in[4:]
		n = min(n, len(in))
		data := in[:n]
		in = in[n:]
		name := BlockName("Ref:7", num)
		switch sel % 8 {
		case 1:
			name += XXHash.Ext()
		case 2:
			name += SHA1.Ext()
		case 3:
			name = fmt.Sprintf("Ref:7/%d", num)
		case 4, 5:
			kind := Checksum(XXHash)
			if sel%8 == 5 {
				kind = SHA1
			}
			// data, then its checksum member with the right hash
			ms = append(ms, Member{name, int64(n), bytes.NewReader(data)})
			text := HashText(kind, data)
			ms = append(ms, Member{name + kind.Ext(), int64(len(text)), bytes.NewReader([]byte(text))})
			continue
		}
		ms = append(ms, Member{name, int64(n), bytes.NewReader(data)})
	}
	return ms
}

// FuzzReadBlocks checks the hashed-block reader: emitted data stays inside
// the disk and in order, and an accepted disk, encoded again with
// WriteBlocks, reads back as the same bytes.
func FuzzReadBlocks(f *testing.F) {
	f.Add([]byte("\x04\x00\x05\x00hello"), int64(5))
	f.Add([]byte("\x04\x00\x03\x00abc\x04\x02\x02\x00de"), int64(2*BlockSize+2))
	f.Fuzz(func(t *testing.T, in []byte, size int64) {
		if size < 0 || size > fuzzMaxOut {
			return
		}
		ms := fuzzMembers(in)
		img := make([]byte, size)
		im := newImage()
		_, err := ReadBlocks(context.Background(), seq(ms), "Ref:7", size, func(off int64, p []byte) error {
			if off < 0 || off+int64(len(p)) > size {
				return fmt.Errorf("emit of %d bytes at %d outside a %d-byte disk", len(p), off, size)
			}
			copy(img[off:], p)
			return im.emit(off, p)
		}, BlockOptions{Jobs: 2})
		if err != nil {
			var me *MemberError
			if !errors.As(err, &me) {
				t.Fatalf("error names no member: %v", err)
			}
			return
		}
		var m memArchive
		if _, err := WriteBlocks(context.Background(), &m, sliceFiller{img, true}, "Ref:7", size, BlockOptions{}); err != nil {
			t.Fatal(err)
		}
		again, _, err := readBlocks(m.members, size, BlockOptions{})
		if err != nil || !bytes.Equal(again, img) {
			t.Fatalf("re-encoded disk reads differently: %v", err)
		}
	})
}
