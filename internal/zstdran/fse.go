package zstdran

import (
	"errors"
	"fmt"
	"math/bits"
)

// fseDesc is an FSE table's description (RFC 8878 4.1.1): its accuracy
// log and the normalized count of each symbol (-1 for "less than 1").
// It is what a restart point keeps, the table being rebuilt from it.
type fseDesc struct {
	log  uint8
	norm []int16
}

// fseEntry is a decoding table cell: the symbol, and how the next state
// is found (base plus nbBits read).
type fseEntry struct {
	sym    uint8
	nbBits uint8
	base   uint16
}

// readFSEDesc reads a table description from in, for symbols up to
// maxSym and an accuracy log up to maxLog; it returns the bytes used.
func readFSEDesc(in []byte, maxSym int, maxLog uint8) (fseDesc, int, error) {
	br := fwdBits{in: in}
	al := uint8(br.peek(4)) + 5
	if err := br.skip(4); err != nil {
		return fseDesc{}, 0, err
	}
	if al > maxLog {
		return fseDesc{}, 0, fmt.Errorf("FSE accuracy log %d over the maximum %d", al, maxLog)
	}
	remaining := (1 << al) + 1
	threshold := 1 << al
	nbBits := int(al) + 1
	norm := make([]int16, 0, maxSym+1)
	for remaining > 1 {
		if len(norm) > maxSym {
			return fseDesc{}, 0, errors.New("FSE table description has too many symbols")
		}
		lim := (2*threshold - 1) - remaining
		v := int(br.peek(nbBits))
		var count int
		if v&(threshold-1) < lim {
			count = v & (threshold - 1)
			if err := br.skip(nbBits - 1); err != nil {
				return fseDesc{}, 0, err
			}
		} else {
			count = v & (2*threshold - 1)
			if count >= threshold {
				count -= lim
			}
			if err := br.skip(nbBits); err != nil {
				return fseDesc{}, 0, err
			}
		}
		count-- // 0 read is "less than 1", -1
		if count < 0 {
			remaining--
		} else {
			remaining -= count
		}
		norm = append(norm, int16(count))
		if count == 0 {
			for {
				rep := int(br.peek(2))
				if err := br.skip(2); err != nil {
					return fseDesc{}, 0, err
				}
				for range rep {
					norm = append(norm, 0)
				}
				if len(norm) > maxSym+1 {
					return fseDesc{}, 0, errors.New("FSE table description has too many symbols")
				}
				if rep != 3 {
					break
				}
			}
		}
		for remaining < threshold && threshold > 1 {
			nbBits--
			threshold >>= 1
		}
	}
	if remaining != 1 {
		return fseDesc{}, 0, errors.New("FSE table description's counts do not add up")
	}
	if len(norm) > maxSym+1 {
		return fseDesc{}, 0, errors.New("FSE table description has too many symbols")
	}
	return fseDesc{log: al, norm: norm}, (br.pos + 7) / 8, nil
}

// build makes the decoding table (RFC 8878 4.1.1, "FSE table"),
// checking the description (a restart point's may come from a file).
func (d fseDesc) build(t []fseEntry) ([]fseEntry, error) {
	if d.log > 9 || len(d.norm) == 0 || len(d.norm) > 256 {
		return nil, errors.New("bad FSE table description")
	}
	size := 1 << d.log
	if cap(t) < size {
		t = make([]fseEntry, size)
	}
	t = t[:size]
	var next [256]uint16
	high := size - 1
	total := 0
	for s, c := range d.norm {
		switch {
		case c == -1:
			if high < 0 {
				return nil, errors.New("bad FSE table description")
			}
			t[high].sym = uint8(s)
			high--
			next[s] = 1
			total++
		case c < -1:
			return nil, errors.New("bad FSE table description")
		default:
			next[s] = uint16(c)
			total += int(c)
		}
	}
	if total != size {
		return nil, errors.New("FSE table description's counts do not add up")
	}
	step := size>>1 + size>>3 + 3
	mask := size - 1
	pos := 0
	for s, c := range d.norm {
		for range int(max(c, 0)) {
			t[pos].sym = uint8(s)
			pos = (pos + step) & mask
			for pos > high {
				pos = (pos + step) & mask
			}
		}
	}
	if pos != 0 {
		return nil, errors.New("bad FSE table description")
	}
	for i := range t {
		s := t[i].sym
		n := next[s]
		next[s]++
		nb := int(d.log) - (bits.Len16(n) - 1)
		t[i].nbBits = uint8(nb)
		t[i].base = uint16(int(n)<<nb - size)
	}
	return t, nil
}

// fseState is a decoder over a table.
type fseState struct {
	t     []fseEntry
	state uint16
}

func (s *fseState) init(br *revBits, log uint8) {
	s.state = uint16(br.get(log))
}

func (s *fseState) sym() uint8 { return s.t[s.state].sym }

func (s *fseState) update(br *revBits) {
	e := s.t[s.state]
	s.state = e.base + uint16(br.get(e.nbBits))
}
