package zstdran

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The three sequence symbol kinds, in the order their tables are
// described in a block (RFC 8878 3.1.1.3.2.1).
const (
	ll = iota // literals length
	of        // offset
	ml        // match length
)

// Per kind: the largest code and accuracy log (RFC 8878 3.1.1.3.2.1).
var (
	maxCode = [3]int{35, 31, 52}
	maxLog  = [3]uint8{9, 8, 9}
)

// predefined are the default distributions (RFC 8878 3.1.1.3.2.2).
var predefined = [3]fseDesc{
	{6, []int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1}},
	{5, []int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}},
	{6, []int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1}},
}

// Literals length and match length codes: baseline and extra bits
// (RFC 8878 3.1.1.3.2.1.1).
var (
	llBase = [36]uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
		8192, 16384, 32768, 65536}
	llBits = [36]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12,
		13, 14, 15, 16}
	mlBase = [53]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
		19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
		35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
		4099, 8195, 16387, 32771, 65539}
	mlBits = [53]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11,
		12, 13, 14, 15, 16}
)

// Table modes of a sequences section, and the kind of table a restart
// point keeps.
const (
	modePredefined = 0
	modeRLE        = 1
	modeFSE        = 2
	modeRepeat     = 3
)

// seqTable is one kind's current table and what rebuilds it.
type seqTable struct {
	mode uint8 // modePredefined, modeRLE or modeFSE; 0xff: none yet
	rle  uint8
	desc fseDesc // for modeFSE
	log  uint8
	t    []fseEntry
	seq  []seqEntry
}

// seqEntry is a decoding table cell with its code's meaning folded in:
// the value's baseline and extra bits, then how the next state is found.
// One lookup per kind and sequence, and no code range to check: a table
// holds only valid codes.
type seqEntry struct {
	base   uint32
	extra  uint8
	nbBits uint8
	next   uint16
}

// fold makes the sequence entries of s.t for kind.
func (s *seqTable) fold(kind int) {
	if cap(s.seq) < len(s.t) {
		s.seq = make([]seqEntry, len(s.t))
	}
	s.seq = s.seq[:len(s.t)]
	for i, e := range s.t {
		q := seqEntry{nbBits: e.nbBits, next: e.base}
		switch kind {
		case ll:
			q.base, q.extra = llBase[e.sym], llBits[e.sym]
		case ml:
			q.base, q.extra = mlBase[e.sym], mlBits[e.sym]
		default:
			q.base, q.extra = 1<<e.sym, e.sym
		}
		s.seq[i] = q
	}
}

// set makes the table from its description, checking it.
func (s *seqTable) set(kind int) error {
	switch s.mode {
	case modePredefined:
		t, err := predefined[kind].build(s.t)
		if err != nil {
			return err
		}
		s.t, s.log = t, predefined[kind].log
	case modeRLE:
		if int(s.rle) > maxCode[kind] {
			return fmt.Errorf("sequences: RLE code %d over %d", s.rle, maxCode[kind])
		}
		s.t, s.log = append(s.t[:0], fseEntry{sym: s.rle}), 0
	case modeFSE:
		if s.desc.log > maxLog[kind] || len(s.desc.norm) > maxCode[kind]+1 {
			return errors.New("sequences: bad FSE table")
		}
		t, err := s.desc.build(s.t)
		if err != nil {
			return err
		}
		s.t, s.log = t, s.desc.log
	default:
		return errors.New("sequences: no table")
	}
	for _, e := range s.t {
		if int(e.sym) > maxCode[kind] {
			return fmt.Errorf("sequences: code %d over %d", e.sym, maxCode[kind])
		}
	}
	s.fold(kind)
	return nil
}

// sequences decodes a block's sequences section (in: from its header
// to the end of the block) and executes the sequences against the
// literals, appending the block's output to d.buf.
func (d *decoder) sequences(in []byte, lits []byte) error {
	if len(in) == 0 {
		return errors.New("sequences: section missing")
	}
	n := int(in[0])
	switch {
	case n == 0:
		if len(in) != 1 {
			return errors.New("sequences: bytes after an empty section")
		}
		d.buf = append(d.buf, lits...)
		return nil
	case n < 128:
		in = in[1:]
	case n < 255:
		if len(in) < 2 {
			return errors.New("sequences: header cut short")
		}
		n = (n-128)<<8 + int(in[1])
		in = in[2:]
	default:
		if len(in) < 3 {
			return errors.New("sequences: header cut short")
		}
		n = int(in[1]) + int(in[2])<<8 + 0x7f00
		in = in[3:]
	}
	if len(in) < 1 {
		return errors.New("sequences: header cut short")
	}
	modes := in[0]
	in = in[1:]
	if modes&3 != 0 {
		return errors.New("sequences: reserved bits set")
	}
	for kind, shift := range [3]uint{6, 4, 2} {
		mode := modes >> shift & 3
		s := &d.seq[kind]
		switch mode {
		case modeRepeat:
			if s.mode == 0xff {
				return errors.New("sequences: repeat mode with no previous table")
			}
			continue
		case modeRLE:
			if len(in) < 1 {
				return errors.New("sequences: RLE symbol missing")
			}
			s.rle = in[0]
			in = in[1:]
		case modeFSE:
			desc, used, err := readFSEDesc(in, maxCode[kind], maxLog[kind])
			if err != nil {
				return fmt.Errorf("sequences: %w", err)
			}
			s.desc = desc
			in = in[used:]
		}
		s.mode = mode
		if err := s.set(kind); err != nil {
			s.mode = 0xff
			return err
		}
	}
	return d.execute(in, n, lits)
}

// execute decodes n sequences from the bit stream in and carries them
// out (RFC 8878 3.1.1.4, 3.1.1.5).
func (d *decoder) execute(in []byte, n int, lits []byte) error {
	var br revBits
	if err := br.init(in); err != nil {
		return fmt.Errorf("sequences: %w", err)
	}
	lt, mt, ot := d.seq[ll].seq, d.seq[ml].seq, d.seq[of].seq
	sll := uint16(br.get(d.seq[ll].log))
	sof := uint16(br.get(d.seq[of].log))
	br.refill()
	sml := uint16(br.get(d.seq[ml].log))
	// Output goes into buf by index: room left at least a block's
	// worth of capacity.
	start := len(d.buf)
	buf := d.buf[:cap(d.buf)]
	end := start + maxBlock
	if end > len(buf) {
		return errors.New("sequences: internal error: no room for the block")
	}
	o := start
	frameAt := d.frameOut - int64(start) // frame output at buf[0]
	window := d.frame.window
	rep := d.rep
	for i := range n {
		br.refill()
		le, me, oe := lt[sll], mt[sml], ot[sof]
		// At most 31 + 16 bits, then 16 + 26: a refill gives 56.
		offVal := oe.base + uint32(br.get(oe.extra))
		mlen := int(me.base + uint32(br.get(me.extra)))
		br.refill()
		llen := int(le.base + uint32(br.get(le.extra)))
		ofc := oe.extra
		var off uint32
		if ofc > 1 {
			// Offset_Value over 3 is a new offset (code 2 up).
			off = offVal - 3
			rep[2], rep[1], rep[0] = rep[1], rep[0], off
		} else {
			// A repeat code; with no literals before the match it is
			// shifted by one (RFC 8878 3.1.1.5).
			idx := offVal
			if llen == 0 {
				idx++
			}
			switch idx {
			case 1:
				off = rep[0]
			case 2:
				off = rep[1]
				rep[1], rep[0] = rep[0], off
			case 3:
				off = rep[2]
				rep[2], rep[1], rep[0] = rep[1], rep[0], off
			default:
				off = rep[0] - 1
				rep[2], rep[1], rep[0] = rep[1], rep[0], off
			}
		}
		if i+1 < n {
			sll = le.next + uint16(br.get(le.nbBits))
			sml = me.next + uint16(br.get(me.nbBits))
			sof = oe.next + uint16(br.get(oe.nbBits))
		}
		if llen > len(lits) {
			return errors.New("sequences: more literals than the block has")
		}
		if o+llen+mlen > end {
			return errors.New("sequences: a block's output over 128 KiB")
		}
		if llen <= 16 && cap(lits) >= 16 && o+16 <= len(buf) {
			// Short copies are most of them: 16 bytes at once (the
			// buffers have room past their ends) beat memmove's call.
			copy16(buf[o:], lits[:16])
		} else {
			copy(buf[o:], lits[:llen])
		}
		lits = lits[llen:]
		o += llen
		// The match: within the frame, the window and the buffer.
		if off == 0 || int64(off) > frameAt+int64(o) || int64(off) > window || int(off) > o {
			return fmt.Errorf("sequences: match offset %d beyond the window (%d bytes of frame output, window %d)", off, frameAt+int64(o), window)
		}
		from := o - int(off)
		if g := d.out - int64(start) + int64(from); g < d.trackHi {
			d.onRef(g, mlen)
		}
		if int(off) >= mlen && mlen > 32 {
			copy(buf[o:o+mlen], buf[from:from+mlen])
		} else if off >= 8 && o+mlen+8 <= len(buf) {
			// 8 bytes at a time: each read is of bytes already in
			// place, overlapping or not, as off is at least 8.
			for j := 0; j < mlen; j += 8 {
				binary.LittleEndian.PutUint64(buf[o+j:], binary.LittleEndian.Uint64(buf[from+j:]))
			}
		} else if int(off) >= mlen {
			copy(buf[o:o+mlen], buf[from:from+mlen])
		} else {
			// Overlapping, off < mlen: the match repeats its first off
			// bytes, so copying what is already written doubles it.
			dst := buf[o : o+mlen]
			k := copy(dst, buf[from:o])
			for k < mlen {
				k += copy(dst[k:], dst[:k])
			}
		}
		o += mlen
	}
	if !br.finished() {
		return errors.New("sequences: bit stream not used up exactly")
	}
	if o+len(lits) > end {
		return errors.New("sequences: a block's output over 128 KiB")
	}
	o += copy(buf[o:], lits)
	d.buf = buf[:o]
	d.rep = rep
	return nil
}

func copy16(dst, src []byte) {
	binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src))
	binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(src[8:]))
}
