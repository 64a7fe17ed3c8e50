package lvm

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The text metadata format: `name { key = value ... }` sections; values
// are integers, "strings" or [lists]; # starts a comment.

// Value is a metadata value: an int64, a string or a []Value.
type Value any

// Section is a named block of the metadata.
type Section struct {
	Name     string
	Keys     map[string]Value
	Sections []*Section
}

// Section returns the child section called name, or nil.
func (s *Section) Section(name string) *Section {
	for _, c := range s.Sections {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Int reads an integer key.
func (s *Section) Int(key string) (int64, error) {
	v, ok := s.Keys[key].(int64)
	if !ok {
		return 0, corrupt("%s: %s is not an integer", s.Name, key)
	}
	return v, nil
}

// Str reads a string key ("" if absent).
func (s *Section) Str(key string) string {
	v, _ := s.Keys[key].(string)
	return v
}

// maxDepth bounds the nesting of sections and lists. LVM2 writes four
// levels (vg, logical_volumes, lv, segment); 16 leaves room.
const maxDepth = 16

// maxNodes bounds the sections, keys and list items of one metadata text,
// counted before each is allocated. The 128 MiB area allows tens of
// millions of three-byte empty sections ("a{}"), each a few hundred bytes
// of memory. Real metadata needs far fewer: a logical volume of a
// XenServer SR takes about 20 nodes (its section, keys, one segment and
// its stripe list), so an SR of 10,000 volumes holds about 200,000. A
// million is five times that and costs at most about 100 MiB.
const maxNodes = 1 << 20

type parser struct {
	s     string
	i     int
	line  int
	nodes int // sections, keys and list items so far
}

// parseText parses metadata text into a root section.
func parseText(text string) (*Section, error) {
	p := &parser{s: text, line: 1}
	root := &Section{}
	if err := p.body(root, 0, true); err != nil {
		return nil, err
	}
	return root, nil
}

// TextError is a malformed metadata text: Offset is the byte of the text
// where it was found, PVOffset that byte's offset in the PV (-1 unknown).
type TextError struct {
	Line, Offset int
	PVOffset     int64
	Msg          string
}

func (e *TextError) Error() string {
	where := fmt.Sprintf("byte %d of the text", e.Offset)
	if e.PVOffset >= 0 {
		where += fmt.Sprintf(", byte %d of the PV", e.PVOffset)
	}
	return fmt.Sprintf("%v: metadata line %d (%s): %s", ErrCorrupt, e.Line, where, e.Msg)
}

func (e *TextError) Unwrap() error { return ErrCorrupt }

func (p *parser) errorf(format string, args ...any) error {
	return &TextError{Line: p.line, Offset: p.i, PVOffset: -1, Msg: fmt.Sprintf(format, args...)}
}

// node counts one more section, key or list item, before it is allocated.
func (p *parser) node() error {
	if p.nodes++; p.nodes > maxNodes {
		return p.errorf("more than %d sections, keys and list items; real metadata holds far fewer", maxNodes)
	}
	return nil
}

// skip passes over blanks and comments.
func (p *parser) skip() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '\n':
			p.line++
			p.i++
		case c == ' ' || c == '\t' || c == '\r':
			p.i++
		case c == '#':
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.+", c) >= 0
}

func (p *parser) ident() string {
	start := p.i
	for p.i < len(p.s) && isIdent(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// body reads key = value lines and sections until '}' (or the end, at the
// top level).
func (p *parser) body(s *Section, depth int, top bool) error {
	if depth > maxDepth {
		return p.errorf("sections nested more than %d deep", maxDepth)
	}
	for {
		p.skip()
		if p.i >= len(p.s) {
			if top {
				return nil
			}
			return p.errorf("section %s is not closed", s.Name)
		}
		if p.s[p.i] == '}' {
			if top {
				return p.errorf("unexpected }")
			}
			p.i++
			return nil
		}
		name := p.ident()
		if name == "" {
			return p.errorf("unexpected %q", p.s[p.i])
		}
		p.skip()
		if p.i >= len(p.s) {
			return p.errorf("%s has no value", name)
		}
		if err := p.node(); err != nil {
			return err
		}
		switch p.s[p.i] {
		case '{':
			p.i++
			c := &Section{Name: name}
			if err := p.body(c, depth+1, false); err != nil {
				return err
			}
			s.Sections = append(s.Sections, c)
		case '=':
			p.i++
			v, err := p.value(depth)
			if err != nil {
				return err
			}
			if s.Keys == nil {
				s.Keys = map[string]Value{}
			}
			s.Keys[name] = v
		default:
			return p.errorf("after %s, want = or {", name)
		}
	}
}

func (p *parser) value(depth int) (Value, error) {
	p.skip()
	if p.i >= len(p.s) {
		return nil, p.errorf("missing value")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.str()
	case c == '[':
		if depth > maxDepth {
			return nil, p.errorf("lists nested too deep")
		}
		p.i++
		var list []Value
		for {
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == ']' {
				p.i++
				return list, nil
			}
			if err := p.node(); err != nil {
				return nil, err
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
			}
		}
	default:
		start := p.i
		for p.i < len(p.s) && (isIdent(p.s[p.i])) {
			p.i++
		}
		n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
		if err != nil {
			return nil, p.errorf("%q is not a number", p.s[start:p.i])
		}
		return n, nil
	}
}

func (p *parser) str() (string, error) {
	// Without escapes the string is a slice of the text, not a copy.
	start := p.i + 1
	if end := strings.IndexAny(p.s[start:], "\"\\"); end >= 0 && p.s[start+end] == '"' {
		v := p.s[start : start+end]
		p.line += strings.Count(v, "\n")
		p.i = start + end + 1
		return v, nil
	}
	var b strings.Builder
	for p.i++; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; c {
		case '"':
			p.i++
			return b.String(), nil
		case '\\':
			if p.i+1 < len(p.s) {
				p.i++
				b.WriteByte(p.s[p.i])
			}
		case '\n':
			p.line++
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf("unterminated string")
}

// VG is a volume group as its metadata describes it.
type VG struct {
	Name       string
	ID         string
	Seqno      int64
	ExtentSize int64 // bytes
	PVs        []PVInfo
	LVs        []*LV
}

// PVInfo is a PV of the VG.
type PVInfo struct {
	Name    string // pv0, pv1, ...
	ID      string // with the dashes of the metadata
	Device  string // a hint only
	DevSize int64  // bytes
	PEStart int64  // bytes
	PECount int64
}

// UUID is the PV's id without dashes, as the PV label spells it.
func (p PVInfo) UUID() string { return strings.ReplaceAll(p.ID, "-", "") }

// LV is a logical volume.
type LV struct {
	Name     string
	ID       string
	Status   []string
	Tags     []string
	Segments []Segment
}

// Segment is a run of an LV's extents.
type Segment struct {
	StartExtent, ExtentCount int64
	Type                     string
	StripeCount              int64
	StripeSize               int64 // sectors, striped only
	Stripes                  []Stripe
}

// Stripe places a segment (or one stripe of it) on a PV.
type Stripe struct {
	PV string // pv0, ...
	PE int64  // first physical extent
}

// ParseMetadata parses VG metadata text.
func ParseMetadata(text string) (*VG, error) {
	root, err := parseText(text)
	if err != nil {
		return nil, err
	}
	if len(root.Sections) != 1 {
		return nil, corrupt("the metadata holds %d volume groups, want 1", len(root.Sections))
	}
	s := root.Sections[0]
	vg := &VG{Name: s.Name, ID: s.Str("id")}
	if vg.Seqno, err = s.Int("seqno"); err != nil {
		return nil, err
	}
	es, err := s.Int("extent_size")
	if err != nil {
		return nil, err
	}
	if es <= 0 || es > 1<<31 {
		return nil, corrupt("extent size %d sectors", es)
	}
	vg.ExtentSize = es * sectorSize
	if pvs := s.Section("physical_volumes"); pvs != nil {
		for _, p := range pvs.Sections {
			info, err := parsePVInfo(p, vg.ExtentSize)
			if err != nil {
				return nil, err
			}
			vg.PVs = append(vg.PVs, info)
		}
	}
	if lvs := s.Section("logical_volumes"); lvs != nil {
		for _, l := range lvs.Sections {
			lv, err := parseLV(l, math.MaxInt64/vg.ExtentSize)
			if err != nil {
				return nil, err
			}
			vg.LVs = append(vg.LVs, lv)
		}
	}
	return vg, nil
}

// parsePVInfo reads a PV's section. Every size must be non-negative and
// the data area's end must be a representable byte offset, so that the
// arithmetic of Map cannot overflow.
func parsePVInfo(p *Section, extentSize int64) (PVInfo, error) {
	info := PVInfo{Name: p.Name, ID: p.Str("id"), Device: p.Str("device")}
	var ds, pe int64
	var err error
	if ds, err = p.Int("dev_size"); err != nil {
		return info, err
	}
	if pe, err = p.Int("pe_start"); err != nil {
		return info, err
	}
	if info.PECount, err = p.Int("pe_count"); err != nil {
		return info, err
	}
	const maxSectors = math.MaxInt64 / sectorSize
	if ds < 0 || ds > maxSectors || pe < 0 || pe > maxSectors || info.PECount < 0 ||
		info.PECount > (math.MaxInt64-pe*sectorSize)/extentSize {
		return info, corrupt("PV %s: dev_size %d, pe_start %d, pe_count %d", p.Name, ds, pe, info.PECount)
	}
	info.DevSize, info.PEStart = ds*sectorSize, pe*sectorSize
	return info, nil
}

func strings_(v Value) []string {
	list, _ := v.([]Value)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// parseLV reads an LV's section; its extents, counted from 0, must number
// at most maxExtents.
func parseLV(l *Section, maxExtents int64) (*LV, error) {
	lv := &LV{Name: l.Name, ID: l.Str("id"), Status: strings_(l.Keys["status"]), Tags: strings_(l.Keys["tags"])}
	var total int64
	for _, seg := range l.Sections {
		if !strings.HasPrefix(seg.Name, "segment") {
			continue
		}
		var s Segment
		var err error
		if s.StartExtent, err = seg.Int("start_extent"); err != nil {
			return nil, err
		}
		if s.ExtentCount, err = seg.Int("extent_count"); err != nil {
			return nil, err
		}
		s.Type = seg.Str("type")
		s.StripeCount, _ = seg.Int("stripe_count")
		s.StripeSize, _ = seg.Int("stripe_size")
		list, _ := seg.Keys["stripes"].([]Value)
		for i := 0; i+1 < len(list); i += 2 {
			pv, ok1 := list[i].(string)
			pe, ok2 := list[i+1].(int64)
			if !ok1 || !ok2 {
				return nil, corrupt("LV %s %s: malformed stripes", lv.Name, seg.Name)
			}
			s.Stripes = append(s.Stripes, Stripe{pv, pe})
		}
		if s.StartExtent < 0 || s.ExtentCount <= 0 || s.ExtentCount > maxExtents-total || s.StartExtent > maxExtents-s.ExtentCount {
			return nil, corrupt("LV %s %s: extents %d+%d", lv.Name, seg.Name, s.StartExtent, s.ExtentCount)
		}
		total += s.ExtentCount
		lv.Segments = append(lv.Segments, s)
	}
	slices.SortFunc(lv.Segments, func(a, b Segment) int { return int(min(max(a.StartExtent-b.StartExtent, -1), 1)) })
	return lv, nil
}

// LV returns the logical volume called name, or nil.
func (vg *VG) LV(name string) *LV {
	for _, lv := range vg.LVs {
		if lv.Name == name {
			return lv
		}
	}
	return nil
}

// PV returns the PV called name (pv0, ...), or nil.
func (vg *VG) PV(name string) *PVInfo {
	for i := range vg.PVs {
		if vg.PVs[i].Name == name {
			return &vg.PVs[i]
		}
	}
	return nil
}

// Size is the LV's size in bytes.
func (vg *VG) Size(lv *LV) int64 {
	var n int64
	for _, s := range lv.Segments {
		n += s.ExtentCount
	}
	return n * vg.ExtentSize
}

// Piece maps a run of an LV onto a PV.
type Piece struct {
	LVOff, PVOff, Len int64
	PV                string // pv0, ...
}

// Map places every byte of lv on its PVs: one piece per linear segment.
// Segments must be contiguous from extent 0; striped segments (more than
// one stripe) are refused, as XenServer never makes them.
func (vg *VG) Map(lv *LV) ([]Piece, error) {
	var pieces []Piece
	next := int64(0)
	for _, s := range lv.Segments {
		if s.StartExtent != next {
			return nil, corrupt("LV %s: extents %d to %d belong to no segment", lv.Name, next, s.StartExtent)
		}
		if s.Type != "striped" || len(s.Stripes) != 1 || s.StripeCount > 1 {
			return nil, fmt.Errorf("lvm: LV %s has a %s segment with %d stripes; only linear segments are supported", lv.Name, s.Type, len(s.Stripes))
		}
		st := s.Stripes[0]
		pv := vg.PV(st.PV)
		if pv == nil {
			return nil, corrupt("LV %s is on %s, which the VG does not list", lv.Name, st.PV)
		}
		if st.PE < 0 || s.ExtentCount > pv.PECount-st.PE {
			return nil, corrupt("LV %s: extents %d+%d lie past %s's %d extents", lv.Name, st.PE, s.ExtentCount, st.PV, pv.PECount)
		}
		pieces = append(pieces, Piece{
			LVOff: s.StartExtent * vg.ExtentSize,
			PVOff: pv.PEStart + st.PE*vg.ExtentSize,
			Len:   s.ExtentCount * vg.ExtentSize,
			PV:    st.PV,
		})
		next += s.ExtentCount
	}
	return pieces, nil
}
