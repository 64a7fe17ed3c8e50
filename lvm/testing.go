package lvm

import "encoding/binary"

// MakePV builds a PV image of size bytes with one metadata area of
// mdaSize bytes at mdaOff, holding text so that its last tail bytes lie at
// the area's end and the rest wraps to the area's start. Every checksum is
// valid whatever the text says: it is for tests of the metadata reader and
// of what reads PVs through it.
func MakePV(text string, size int, mdaOff, mdaSize, tail uint64) []byte {
	le := binary.LittleEndian
	img := make([]byte, size)
	label := img[512:1024]
	copy(label, labelID)
	le.PutUint64(label[8:], 1)
	le.PutUint32(label[20:], 32)
	copy(label[24:], labelType)
	h := label[32:]
	copy(h, "abcdefghijklmnopqrstuvwxyz012345")
	le.PutUint64(h[32:], uint64(len(img)))
	le.PutUint64(h[40:], uint64(size/2)) // data area
	le.PutUint64(h[72:], mdaOff)
	le.PutUint64(h[80:], mdaSize)
	le.PutUint32(label[16:], crc(label[20:]))
	tb := []byte(text + "\x00")
	off := mdaSize - tail
	copy(img[mdaOff+off:mdaOff+mdaSize], tb)
	copy(img[mdaOff+mdaHeaderSize:], tb[tail:])
	m := img[mdaOff : mdaOff+mdaHeaderSize]
	copy(m[4:], mdaMagic)
	le.PutUint32(m[20:], 1)
	le.PutUint64(m[24:], mdaOff)
	le.PutUint64(m[32:], mdaSize)
	le.PutUint64(m[40:], off)
	le.PutUint64(m[48:], uint64(len(tb)))
	le.PutUint32(m[56:], crc(tb))
	le.PutUint32(m, crc(m[4:]))
	return img
}
