package tarx

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// readChecked reads every member of a stream, checking that DataOffset points
// at the bytes Read returns.
func readChecked(t *testing.T, in []byte) ([]member, error) {
	tr := NewReader(bytes.NewReader(in))
	var ms []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms, nil
		}
		if err != nil {
			return ms, err
		}
		if h.Size < 0 || h.DataOffset < 0 || h.DataOffset%Block != 0 {
			t.Fatalf("member %q: size %d at %d", h.Name, h.Size, h.DataOffset)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return ms, err
		}
		if int64(len(data)) != h.Size {
			t.Fatalf("member %q: read %d bytes of %d", h.Name, len(data), h.Size)
		}
		if end := h.DataOffset + h.Size; end > int64(len(in)) || !bytes.Equal(in[h.DataOffset:end], data) {
			t.Fatalf("member %q: DataOffset %d does not locate its data", h.Name, h.DataOffset)
		}
		if h.IsRegular() {
			ms = append(ms, member{h.Name, data})
		}
	}
}

// FuzzReader checks the tar reader on any input: member data is where
// DataOffset says, and the regular members of an accepted stream, written
// again in V7 form, read back the same both here and with archive/tar.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	tw := NewWriter(&buf)
	tw.WriteHeader("ova.xml", 3, 0)
	tw.Write([]byte("abc"))
	tw.Close()
	f.Add(buf.Bytes(), false)
	f.Fuzz(func(t *testing.T, in []byte, fix bool) {
		if fix {
			fixChecksums(in)
		}
		var ms []member
		var err error
		// Member data is read into memory here; beyond it, at most one
		// PAX record or long name (1 MiB) is allocated before it is read.
		fuzzutil.Bounded(t, 4<<20+8*uint64(len(in)), func() { ms, err = readChecked(t, in) })
		if err != nil {
			if !knownError(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		for _, m := range ms {
			if _, err := V7Header(m.name, 0, 0); err != nil {
				return // V7 cannot carry it (too long, or a directory's name)
			}
			if err := w.WriteHeader(m.name, int64(len(m.data)), 0); err != nil {
				t.Fatal(err)
			}
			w.Write(m.data)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := readChecked(t, out.Bytes())
		if err != nil || !equalMembers(ms, again) {
			t.Fatalf("re-written stream reads differently (%v)", err)
		}
		if std := readStd(t, out.Bytes()); !equalMembers(ms, std) {
			t.Fatalf("archive/tar reads our V7 stream differently: %d members vs %d", len(std), len(ms))
		}
	})
}

// readStd reads a stream with archive/tar.
func readStd(t *testing.T, in []byte) []member {
	tr := tar.NewReader(bytes.NewReader(in))
	var ms []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		ms = append(ms, member{h.Name, data})
	}
}

func equalMembers(a, b []member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || !bytes.Equal(a[i].data, b[i].data) {
			return false
		}
	}
	return true
}

// knownError reports whether err is one of the reader's documented kinds,
// which callers map to "corrupt archive".
func knownError(err error) bool {
	for _, k := range []error{ErrHeader, ErrChecksum, ErrTooLarge, io.ErrUnexpectedEOF} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// fixChecksums gives every non-zero block of in a valid header checksum, so
// that the fuzzer can explore the fields behind it rather than stopping at
// the checksum. Data blocks change too, which is harmless.
func fixChecksums(in []byte) {
	for off := 0; off+Block <= len(in); off += Block {
		b := (*[Block]byte)(in[off : off+Block])
		if isZero(b[:]) {
			continue
		}
		copy(b[148:156], "        ")
		var sum int64
		for _, c := range b {
			sum += int64(c)
		}
		copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
}
