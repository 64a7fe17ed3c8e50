package zran

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// gzip member flags (RFC 1952 2.3.1).
const (
	flagHCRC     = 1 << 1
	flagExtra    = 1 << 2
	flagName     = 1 << 3
	flagComment  = 1 << 4
	flagReserved = 0xe0
)

// readHeader reads a gzip member header at the reader's position (a
// byte boundary), leaving it at the first deflate block.
func readHeader(br *bitReader) error {
	at := br.byteAt()
	var h [10]byte
	if err := br.readFull(h[:]); err != nil {
		return err
	}
	if h[0] != 0x1f || h[1] != 0x8b {
		return fmt.Errorf("zran: no gzip member at byte %d", at)
	}
	if h[2] != 8 {
		return fmt.Errorf("zran: gzip member at byte %d: compression method %d, not deflate", at, h[2])
	}
	flg := h[3]
	if flg&flagReserved != 0 {
		return fmt.Errorf("zran: gzip member at byte %d: reserved flags %#x set", at, flg)
	}
	crc := crc32.ChecksumIEEE(h[:])
	var err error
	if flg&flagExtra != 0 {
		crc, err = skipExtra(br, crc)
	}
	if err == nil && flg&flagName != 0 {
		crc, err = skipString(br, crc)
	}
	if err == nil && flg&flagComment != 0 {
		crc, err = skipString(br, crc)
	}
	if err == nil && flg&flagHCRC != 0 {
		var c [2]byte
		if err = br.readFull(c[:]); err == nil && binary.LittleEndian.Uint16(c[:]) != uint16(crc) {
			err = fmt.Errorf("zran: gzip member at byte %d: header CRC mismatch", at)
		}
	}
	return err
}

// skipExtra skips the extra field, adding it to the header CRC.
func skipExtra(br *bitReader, crc uint32) (uint32, error) {
	var l [2]byte
	if err := br.readFull(l[:]); err != nil {
		return crc, err
	}
	crc = crc32.Update(crc, crc32.IEEETable, l[:])
	var buf [256]byte
	for n := int(binary.LittleEndian.Uint16(l[:])); n > 0; {
		k := min(n, len(buf))
		if err := br.readFull(buf[:k]); err != nil {
			return crc, err
		}
		crc = crc32.Update(crc, crc32.IEEETable, buf[:k])
		n -= k
	}
	return crc, nil
}

// skipString skips a zero-terminated name or comment.
func skipString(br *bitReader, crc uint32) (uint32, error) {
	var c [1]byte
	for {
		if err := br.readFull(c[:]); err != nil {
			return crc, err
		}
		crc = crc32.Update(crc, crc32.IEEETable, c[:])
		if c[0] == 0 {
			return crc, nil
		}
	}
}

// readTrailer reads the CRC-32 and ISIZE after a member's last block.
func readTrailer(br *bitReader) (crc, isize uint32, err error) {
	if err := br.align(); err != nil {
		return 0, 0, err
	}
	var t [8]byte
	if err := br.readFull(t[:]); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(t[:4]), binary.LittleEndian.Uint32(t[4:]), nil
}

// nextMember reads the next member's header if there is one. As gzip
// -d does, zero bytes after the last member are padding; anything else
// there is refused.
func nextMember(br *bitReader) (bool, error) {
	at := br.byteAt()
	var c [1]byte
	for br.byteAt() < br.size {
		if err := br.readFull(c[:]); err != nil {
			return false, err
		}
		if c[0] != 0 {
			if br.byteAt()-1 != at {
				return false, fmt.Errorf("zran: garbage after the last gzip member at byte %d", br.byteAt()-1)
			}
			if err := br.seek(at * 8); err != nil {
				return false, err
			}
			return true, readHeader(br)
		}
	}
	return false, nil
}
