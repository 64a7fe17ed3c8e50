package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// Where the fuzz harness puts the parts it is given: our writer's layout
// (log at 1 MiB, BAT at 2 MiB, metadata at 3 MiB, blocks from 4 MiB).
const (
	fuzzBAT  = 2 << 20
	fuzzMeta = 3 << 20
	fuzzData = 4 << 20
	fuzzMax  = 12 << 20 // the largest file the harness builds
)

// fixChecksums gives both headers and both region tables valid CRC-32Cs,
// so that the fuzzer and the hostile-input tests can reach the fields
// behind them.
func fixChecksums(b []byte) {
	for _, s := range [][2]int64{{header1Off, headerSize}, {header2Off, headerSize}, {region1Off, regionSize}, {region2Off, regionSize}} {
		if s[0]+s[1] <= int64(len(b)) {
			setChecksum(b[s[0] : s[0]+s[1]])
		}
	}
}

// assemble builds a VHDX file of size bytes from its parts: the header
// (both copies), the region table (both copies), the metadata region's
// start, the BAT's start, and blocks of non-zero bytes after them.
func assemble(header, regions, meta, bat []byte, size int64, fix bool) []byte {
	size = min(max(size, 0), fuzzMax)
	b := make([]byte, size)
	copy(b, fileSig)
	put := func(off int64, p []byte, limit int) {
		if off < size {
			copy(b[off:], p[:min(len(p), limit)])
		}
	}
	put(header1Off, header, headerSize)
	put(header2Off, header, headerSize)
	put(region1Off, regions, regionSize)
	put(region2Off, regions, regionSize)
	put(fuzzBAT, bat, 1<<20)
	put(fuzzMeta, meta, 1<<20)
	for i := int64(fuzzData); i < size; i++ {
		b[i] = byte(i>>9) | 1
	}
	if fix {
		fixChecksums(b)
	}
	return b
}

// parts splits an image our writer made into what assemble takes.
func parts(b []byte) (header, regions, meta, bat []byte) {
	return b[header1Off : header1Off+headerSize], b[region1Off : region1Off+4096],
		b[fuzzMeta : fuzzMeta+metaTableLen+4096], b[fuzzBAT : fuzzBAT+4096]
}

// FuzzOpen checks the VHDX reader on any headers, region table, metadata
// and BAT: it never allocates much more than the file, the extents of an
// image it opens lie inside the disk in order, every byte of the disk
// reads, bytes outside the extents are zero, and the disk written again
// with our writer reads back the same.
func FuzzOpen(f *testing.F) {
	for _, o := range []Options{{BlockSize: 1 << 20}, {BlockSize: 1 << 20, Fixed: true}} {
		b := seedImage(f, 5<<20+512, o)
		h, r, m, bat := parts(b)
		f.Add(h, r, m, bat, int64(len(b)), false)
	}
	f.Fuzz(func(t *testing.T, header, regions, meta, bat []byte, size int64, fix bool) {
		in := assemble(header, regions, meta, bat, size, fix)
		var img *Image
		var err error
		fuzzutil.Bounded(t, 4<<20+2*uint64(len(in)), func() {
			img, err = OpenOn(bytes.NewReader(in), int64(len(in)), "fuzz.vhdx")
		})
		if err != nil {
			return
		}
		if _, err := img.Info(context.Background()); err != nil {
			t.Fatalf("Info of an opened image: %v", err)
		}
		size = img.Size()
		var pos int64
		var ext [][2]int64
		for e, err := range img.Extents(context.Background()) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Off < pos || e.Len <= 0 || e.End() > size {
				t.Fatalf("extent %+v after %d in a %d-byte disk", e, pos, size)
			}
			pos = e.End()
			ext = append(ext, [2]int64{e.Off, e.End()})
		}
		if size > 16<<20 {
			return
		}
		data := make([]byte, size)
		if _, err := img.ReadAt(data, 0); err != nil {
			t.Fatalf("reading an opened image: %v", err)
		}
		pos = 0
		for _, e := range append(ext, [2]int64{size, size}) {
			if !isZero(data[pos:e[0]]) {
				t.Fatalf("bytes %d-%d, outside the extents, are not zero", pos, e[0])
			}
			pos = e[1]
		}
		path := filepath.Join(t.TempDir(), "again.vhdx")
		write(t, path, memSource(data), Options{BlockSize: 1 << 20})
		if !bytes.Equal(readAll(t, path), data) {
			t.Fatal("written again, the disk reads differently")
		}
	})
}

func isZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

// seedImage is an image from our writer with data in its first and third
// blocks.
func seedImage(t testing.TB, size int64, o Options) []byte {
	data := make([]byte, size)
	copy(data, bytes.Repeat([]byte("boot"), 1000))
	copy(data[2<<20+4096:], bytes.Repeat([]byte("data"), 1000))
	path := filepath.Join(t.TempDir(), "seed.vhdx")
	write(t, path, memSource(data), o)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The seeds must open through the harness, or the fuzzer starts from
// nothing.
func TestFuzzSeedsOpen(t *testing.T) {
	for _, o := range []Options{{BlockSize: 1 << 20}, {BlockSize: 1 << 20, Fixed: true}} {
		b := seedImage(t, 5<<20+512, o)
		h, r, m, bat := parts(b)
		in := assemble(h, r, m, bat, int64(len(b)), false)
		img, err := OpenOn(bytes.NewReader(in), int64(len(in)), "seed.vhdx")
		if err != nil {
			t.Fatal(err)
		}
		if i, _ := img.Info(context.Background()); i.Allocated == 0 {
			t.Fatalf("%+v: no block allocated", i)
		}
	}
}

// Hostile images: each a valid image with one thing wrong, which the
// reader refuses with ErrCorrupt (or ErrLog) rather than reading out of
// bounds, looping or allocating without limit.
func TestHostileImages(t *testing.T) {
	good := seedImage(t, 5<<20+512, Options{BlockSize: 1 << 20})
	le := binary.LittleEndian
	meta := func(b []byte, item int) []byte { return b[fuzzMeta+32+32*item:] } // item table entries
	batAt := func(b []byte, i int) []byte { return b[fuzzBAT+8*i:] }
	bothHeaders := func(f func(h []byte)) func(b []byte) {
		return func(b []byte) { f(b[header1Off:]); f(b[header2Off:]) }
	}
	bothRegions := func(f func(r []byte)) func(b []byte) {
		return func(b []byte) { f(b[region1Off:]); f(b[region2Off:]) }
	}
	cases := map[string]func(b []byte){
		"no identifier": func(b []byte) { copy(b, "vhdxFILE") },
		"headers with the same sequence but different": func(b []byte) {
			le.PutUint64(b[header2Off+8:], 1)
			b[header2Off+20] ^= 1
		},
		"log not on a MiB": bothHeaders(func(h []byte) { le.PutUint64(h[72:], 1<<20+4096) }),
		"log past the end": bothHeaders(func(h []byte) { le.PutUint32(h[68:], 64<<20) }),
		"log version 1":    bothHeaders(func(h []byte) { le.PutUint16(h[64:], 1) }),
		"region count":     bothRegions(func(r []byte) { le.PutUint32(r[8:], 5000) }),
		"BAT region past the end": bothRegions(func(r []byte) {
			le.PutUint64(r[16+16:], 1<<40)
		}),
		"BAT region in the log": bothRegions(func(r []byte) { le.PutUint64(r[16+16:], 1<<20) }),
		"BAT region in the headers": bothRegions(func(r []byte) {
			le.PutUint64(r[16+16:], 0)
		}),
		"BAT and metadata overlap": bothRegions(func(r []byte) { le.PutUint64(r[16+32+16:], 2<<20) }),
		"two BAT regions":          bothRegions(func(r []byte) { copy(r[16+32:], r[16:16+16]) }),
		"unknown required region": bothRegions(func(r []byte) {
			le.PutUint32(r[8:], 3)
			copy(r[16+64:], "some other guid!")
			le.PutUint64(r[16+64+16:], 8<<20)
			le.PutUint32(r[16+64+24:], 1<<20)
			le.PutUint32(r[16+64+28:], 1)
		}),
		"no metadata signature":         func(b []byte) { copy(b[fuzzMeta:], "METADATA") },
		"metadata count":                func(b []byte) { le.PutUint16(b[fuzzMeta+10:], 3000) },
		"metadata item past region":     func(b []byte) { le.PutUint32(meta(b, 1)[16:], 1<<20-4) },
		"metadata item in the table":    func(b []byte) { le.PutUint32(meta(b, 1)[16:], 100) },
		"metadata item wrong length":    func(b []byte) { le.PutUint32(meta(b, 1)[20:], 16) },
		"metadata item offset overflow": func(b []byte) { le.PutUint32(meta(b, 1)[16:], 0xFFFFFFFF) },
		"metadata item missing":         func(b []byte) { copy(meta(b, 3), "not the logical!") },
		"metadata item twice":           func(b []byte) { copy(meta(b, 3), meta(b, 4)[:16]) },
		"unknown required metadata": func(b []byte) {
			copy(meta(b, 3), "not the logical!")
			le.PutUint32(meta(b, 3)[24:], metaRequired)
		},
		"block size 3 MiB":      func(b []byte) { le.PutUint32(b[fuzzMeta+metaTableLen:], 3<<20) },
		"block size 512 MiB":    func(b []byte) { le.PutUint32(b[fuzzMeta+metaTableLen:], 512<<20) },
		"size not in sectors":   func(b []byte) { le.PutUint64(b[fuzzMeta+metaTableLen+8:], 5<<20+100) },
		"size over 64 TiB":      func(b []byte) { le.PutUint64(b[fuzzMeta+metaTableLen+8:], 65<<40) },
		"size needs a huge BAT": func(b []byte) { le.PutUint64(b[fuzzMeta+metaTableLen+8:], 60<<40) },
		"logical sector 1024":   func(b []byte) { le.PutUint32(b[fuzzMeta+metaTableLen+32:], 1024) },
		"parent without locator": func(b []byte) {
			le.PutUint32(b[fuzzMeta+metaTableLen+4:], 2)
		},
		"block past the end":      func(b []byte) { le.PutUint64(batAt(b, 0), 1<<60|stateFull) },
		"block offset overflow":   func(b []byte) { le.PutUint64(batAt(b, 0), 0xFFFFFFFFFFF00000|stateFull) },
		"last block past the end": func(b []byte) { le.PutUint64(batAt(b, 5), uint64(len(b))|stateFull) },
		"block in the headers":    func(b []byte) { le.PutUint64(batAt(b, 0), stateFull) },
		"block in the BAT":        func(b []byte) { le.PutUint64(batAt(b, 0), 2<<20|stateFull) },
		"block in the metadata":   func(b []byte) { le.PutUint64(batAt(b, 0), 3<<20|stateFull) },
		"blocks overlap":          func(b []byte) { copy(batAt(b, 2), batAt(b, 0)[:8]) },
		"unknown block state":     func(b []byte) { le.PutUint64(batAt(b, 1), 4) },
		"partial without parent":  func(b []byte) { le.PutUint64(batAt(b, 0), le.Uint64(batAt(b, 0))|statePartial) },
	}
	// These break a checksum, after the others are made valid.
	afterFix := map[string]func(b []byte){
		"no valid header":       bothHeaders(func(h []byte) { h[100] ^= 1 }),
		"no valid region table": bothRegions(func(r []byte) { r[100] ^= 1 }),
	}
	for name := range afterFix {
		cases[name] = func([]byte) {}
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			mutate(b)
			fixChecksums(b)
			if after := afterFix[name]; after != nil {
				after(b)
			}
			fuzzutil.Bounded(t, 4<<20+2*uint64(len(b)), func() {
				_, err := OpenOn(bytes.NewReader(b), int64(len(b)), "bad.vhdx")
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("opened, or another error: %v", err)
				}
			})
		})
	}
	// The good image itself opens.
	if _, err := OpenOn(bytes.NewReader(good), int64(len(good)), "good.vhdx"); err != nil {
		t.Fatal(err)
	}
	// Truncated anywhere, the image is refused or reads.
	for _, n := range []int{0, 7, 64 << 10, 200 << 10, 1 << 20, 3 << 20, 4<<20 + 100, len(good) - 512} {
		if img, err := OpenOn(bytes.NewReader(good[:n]), int64(n), "short.vhdx"); err == nil {
			buf := make([]byte, img.Size())
			if _, err := img.ReadAt(buf, 0); err != nil {
				t.Fatalf("truncated to %d: opened, then %v", n, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

// A log with an entry to replay (a non-zero LogGuid and a valid entry
// carrying it) is refused with ErrLog; a LogGuid with an empty log is not.
func TestLogToReplay(t *testing.T) {
	good := seedImage(t, 5<<20+512, Options{BlockSize: 1 << 20})
	guid := GUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	withGUID := bytes.Clone(good)
	copy(withGUID[header1Off+48:], guid[:])
	copy(withGUID[header2Off+48:], guid[:])
	fixChecksums(withGUID)
	if _, err := OpenOn(bytes.NewReader(withGUID), int64(len(withGUID)), "empty-log.vhdx"); err != nil {
		t.Fatalf("a LogGuid over an empty log: %v", err)
	}
	withEntry := bytes.Clone(withGUID)
	e := withEntry[logOff+8192 : logOff+8192+4096]
	copy(e, logSig)
	binary.LittleEndian.PutUint32(e[8:], 4096) // entry length
	binary.LittleEndian.PutUint64(e[16:], 7)   // sequence number
	copy(e[32:], guid[:])
	setChecksum(e)
	_, err := OpenOn(bytes.NewReader(withEntry), int64(len(withEntry)), "log.vhdx")
	if !errors.Is(err, ErrLog) || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("a log to replay: %v", err)
	}
	// The same entry under another GUID is an old log: no replay.
	other := bytes.Clone(withEntry)
	other[header1Off+48] ^= 0xFF
	other[header2Off+48] ^= 0xFF
	fixChecksums(other)
	if _, err := OpenOn(bytes.NewReader(other), int64(len(other)), "old-log.vhdx"); err != nil {
		t.Fatalf("an old log entry: %v", err)
	}
}
