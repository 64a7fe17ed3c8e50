package xva

import (
	"encoding/binary"
	"testing"
)

// The cache file is read back as it was written, or ignored: whatever its
// bytes, loading it never panics, and a member table taken from it lies
// inside the tar it describes.
func FuzzLoadCache(f *testing.F) {
	c := &tarFileContainer{members: []indexed{{name: "ova.xml", raw: "ova.xml", size: 100, off: 512}, {name: "Ref:1/00000000", raw: "Ref:1/00000000", size: 1 << 20, off: 1024}}, sawEnd: true}
	table := encodeTarTable(c)
	f.Add(table, int64(2<<20))
	body := append([]byte(nil), cacheMagic...)
	body = binary.LittleEndian.AppendUint64(body, 5)
	body = binary.LittleEndian.AppendUint64(body, 7)
	body = binary.LittleEndian.AppendUint32(body, 0)
	body = binary.LittleEndian.AppendUint32(body, 1)
	body = binary.LittleEndian.AppendUint32(body, 8)
	body = append(body, "x.xva.gz"...)
	body = binary.LittleEndian.AppendUint32(body, uint32(len(table)))
	body = append(body, table...)
	f.Add(body, int64(5))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		if size < 0 {
			size = -size
		}
		if c, ok := decodeTarTable(b, size); ok {
			for _, m := range c.members {
				if m.off < 0 || m.size < 0 || m.off > size || m.size > size-m.off {
					t.Fatalf("member %q at %d, %d bytes, outside a %d-byte tar", m.name, m.off, m.size, size)
				}
			}
		}
		g := &restartIndexes{size: 5, mtime: 7, entries: nil, tars: map[string][]byte{}}
		g.load(b)
	})
}
