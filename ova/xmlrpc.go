package ova

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Limits on an ova.xml (and on an XML-RPC response, read by the same
// parser), checked before the tree is built.
const (
	MaxDocSize = 32 << 20 // bytes
	MaxDepth   = 64       // element nesting
	// MaxNodes bounds the elements and attributes together. Building the
	// tree costs a few hundred bytes per node, and 32 MiB of "<a/>" are
	// eight million of them. A real document needs far fewer: an exported
	// VM record is about 2,000 elements, a VBD or VDI a few hundred, so a
	// VM with 255 disks and its SRs and networks is about 100,000, and
	// tens of snapshots of it fit too. Reading the largest accepted
	// document peaks at about 150 MiB.
	MaxNodes = 1 << 19
)

// Kind is the type of an XML-RPC value.
type Kind int

// XML-RPC value kinds. An untagged <value>text</value> is a String; xapi
// writes integers that way, so Int reads a String's text too.
const (
	String Kind = iota
	Int
	Bool
	Double
	DateTime
	Base64
	Array
	Struct
)

// Value is a node of an XML-RPC value tree. It keeps what it was read
// from, the exact scalar text, the type tag (or none) and member order, so
// that a document read and written again says the same thing.
type Value struct {
	Kind    Kind
	Tag     string   // type element as read: "", "string", "int", "i4", "i8", "boolean", ...
	Text    string   // scalar text
	Items   []*Value // Array
	Members []Member // Struct, in document order
}

// Member is a named struct field.
type Member struct {
	Name  string
	Value *Value
}

var tagKinds = map[string]Kind{
	"": String, "string": String, "int": Int, "i4": Int, "i8": Int, "boolean": Bool,
	"double": Double, "dateTime.iso8601": DateTime, "base64": Base64, "array": Array, "struct": Struct,
}

// checkXML refuses documents that are too large, nested too deeply, hold
// too many elements and attributes or carry a DTD (and so entity
// definitions) before any tree is built.
func checkXML(doc []byte) error {
	if len(doc) > MaxDocSize {
		return fmt.Errorf("ova: ova.xml is %d bytes, more than the %d allowed", len(doc), MaxDocSize)
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth, nodes := 0, 0
	for {
		// A start tag is read whole, attributes and all, so count them
		// before: each needs a '=', and the tag ends before the next '<'
		// (which attribute values may not hold).
		if off := int(d.InputOffset()); off+1 < len(doc) && doc[off] == '<' && !bytes.ContainsAny(doc[off+1:off+2], "/!?") {
			tag := doc[off+1:]
			if end := bytes.IndexByte(tag, '<'); end >= 0 {
				tag = tag[:end]
			}
			if nodes+1+bytes.Count(tag, []byte("=")) > MaxNodes {
				return tooManyNodes(off)
			}
		}
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ova: parsing ova.xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth++; depth > MaxDepth {
				return fmt.Errorf("ova: ova.xml nests elements more than %d deep", MaxDepth)
			}
			if nodes += 1 + len(t.Attr); nodes > MaxNodes {
				return tooManyNodes(int(d.InputOffset()))
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) {
				return errors.New("ova: ova.xml has a DOCTYPE; entity definitions are not accepted")
			}
		}
	}
}

func tooManyNodes(at int) error {
	return fmt.Errorf("ova: ova.xml holds more than %d elements and attributes (at byte %d); real documents hold far fewer", MaxNodes, at)
}

// rootTag returns the name of doc's root element, reading no further; ""
// if it has none before an error.
func rootTag(doc []byte) string {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return ""
		}
		if t, ok := tok.(xml.StartElement); ok {
			return t.Name.Local
		}
	}
}

// readDoc checks doc and builds its element tree, once.
func readDoc(doc []byte) (*etree.Element, error) {
	if err := checkXML(doc); err != nil {
		return nil, err
	}
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		return nil, fmt.Errorf("ova: parsing ova.xml: %w", err)
	}
	if d.Root() == nil {
		return nil, errors.New("ova: ova.xml has no root element")
	}
	return d.Root(), nil
}

// ParseValue reads a document whose root is one XML-RPC <value>.
func ParseValue(doc []byte) (*Value, error) {
	root, err := readDoc(doc)
	if err != nil {
		return nil, err
	}
	if root.Tag != "value" {
		return nil, fmt.Errorf("ova: root element is <%s>, want <value>", root.Tag)
	}
	return parseValue(root)
}

func parseValue(e *etree.Element) (*Value, error) {
	children := e.ChildElements()
	if len(children) == 0 {
		return &Value{Kind: String, Text: e.Text()}, nil
	}
	if len(children) > 1 {
		return nil, fmt.Errorf("ova: <value> holds %d elements, want one", len(children))
	}
	if strings.TrimSpace(e.Text()) != "" || strings.TrimSpace(children[0].Tail()) != "" {
		return nil, errors.New("ova: <value> mixes text and elements")
	}
	t := children[0]
	kind, ok := tagKinds[t.Tag]
	if !ok || t.Tag == "" {
		return nil, fmt.Errorf("ova: unknown XML-RPC type <%s>", t.Tag)
	}
	v := &Value{Kind: kind, Tag: t.Tag}
	switch kind {
	case Array:
		data := t.SelectElement("data")
		if data == nil {
			return nil, errors.New("ova: <array> has no <data>")
		}
		for _, item := range data.ChildElements() {
			if item.Tag != "value" {
				return nil, fmt.Errorf("ova: <data> holds <%s>, want <value>", item.Tag)
			}
			iv, err := parseValue(item)
			if err != nil {
				return nil, err
			}
			v.Items = append(v.Items, iv)
		}
	case Struct:
		for _, m := range t.ChildElements() {
			if m.Tag != "member" {
				return nil, fmt.Errorf("ova: <struct> holds <%s>, want <member>", m.Tag)
			}
			name, val := m.SelectElement("name"), m.SelectElement("value")
			if name == nil || val == nil {
				return nil, errors.New("ova: <member> lacks <name> or <value>")
			}
			mv, err := parseValue(val)
			if err != nil {
				return nil, err
			}
			v.Members = append(v.Members, Member{Name: name.Text(), Value: mv})
		}
	default:
		v.Text = t.Text()
		// xapi's reader (ocaml-rpc xmlrpc.ml:233-239, 313) refuses an
		// empty <boolean> and reads any other text but "1" as false.
		if kind == Bool && v.Text == "" {
			return nil, errors.New("ova: an empty <boolean>")
		}
	}
	return v, nil
}

// Marshal writes v as xapi does: no declaration, no whitespace, strings
// untagged, control characters other than TAB, LF and CR dropped.
func (v *Value) Marshal() []byte {
	var b bytes.Buffer
	v.write(&b)
	return b.Bytes()
}

func (v *Value) write(b *bytes.Buffer) {
	b.WriteString("<value>")
	switch v.Kind {
	case Array:
		b.WriteString("<array><data>")
		for _, it := range v.Items {
			it.write(b)
		}
		b.WriteString("</data></array>")
	case Struct:
		b.WriteString("<struct>")
		for _, m := range v.Members {
			b.WriteString("<member><name>")
			escape(b, m.Name)
			b.WriteString("</name>")
			m.Value.write(b)
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	default:
		if v.Tag != "" {
			b.WriteString("<" + v.Tag + ">")
		}
		escape(b, v.Text)
		if v.Tag != "" {
			b.WriteString("</" + v.Tag + ">")
		}
	}
	b.WriteString("</value>")
}

func escape(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&quot;")
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			// dropped, as xapi does
		case r == '\r':
			b.WriteString("&#13;") // a literal CR would be read back as LF
		default:
			b.WriteRune(r)
		}
	}
}

// Field returns the struct member called name, or nil.
func (v *Value) Field(name string) *Value {
	if v == nil || v.Kind != Struct {
		return nil
	}
	for _, m := range v.Members {
		if m.Name == name {
			return m.Value
		}
	}
	return nil
}

// Set replaces or appends the struct member called name.
func (v *Value) Set(name string, x *Value) {
	for i, m := range v.Members {
		if m.Name == name {
			v.Members[i].Value = x
			return
		}
	}
	v.Members = append(v.Members, Member{name, x})
}

// Str returns a scalar's text ("" for nil).
func (v *Value) Str() string {
	if v == nil {
		return ""
	}
	return v.Text
}

// Int64 reads an integer, tagged or written as a string as xapi does.
func (v *Value) Int64() (int64, error) {
	if v == nil {
		return 0, errors.New("missing")
	}
	if v.Kind != Int && v.Kind != String {
		return 0, fmt.Errorf("%q is not an integer", v.Text)
	}
	return strconv.ParseInt(strings.TrimSpace(v.Text), 10, 64)
}

// Bool reads a <boolean>; xapi accepts nothing else for booleans.
func (v *Value) Bool() (bool, error) {
	if v == nil {
		return false, errors.New("missing")
	}
	if v.Kind != Bool {
		return false, fmt.Errorf("%q is not a <boolean>", v.Text)
	}
	return v.Text == "1", nil
}

// Strings returns the texts of an array's items.
func (v *Value) Strings() []string {
	if v == nil {
		return nil
	}
	s := make([]string, 0, len(v.Items))
	for _, it := range v.Items {
		s = append(s, it.Text)
	}
	return s
}

// Constructors for building documents.

// NewString is an untagged string value.
func NewString(s string) *Value { return &Value{Kind: String, Text: s} }

// NewInt is an integer written as xapi writes it: an untagged string.
func NewInt(n int64) *Value { return &Value{Kind: String, Text: strconv.FormatInt(n, 10)} }

// NewBool is a <boolean>.
func NewBool(b bool) *Value {
	v := &Value{Kind: Bool, Tag: "boolean", Text: "0"}
	if b {
		v.Text = "1"
	}
	return v
}

// NewDouble is a <double> printed as xapi prints it (%.16g).
func NewDouble(f float64) *Value {
	return &Value{Kind: Double, Tag: "double", Text: strconv.FormatFloat(f, 'g', 16, 64)}
}

// NewTime is a <dateTime.iso8601> in xapi's form, 19700101T00:00:00Z.
func NewTime(t time.Time) *Value {
	return &Value{Kind: DateTime, Tag: "dateTime.iso8601", Text: t.UTC().Format("20060102T15:04:05Z")}
}

// NewArray is an <array> of values.
func NewArray(items ...*Value) *Value { return &Value{Kind: Array, Tag: "array", Items: items} }

// NewStrings is an <array> of strings.
func NewStrings(s ...string) *Value {
	a := NewArray()
	for _, x := range s {
		a.Items = append(a.Items, NewString(x))
	}
	return a
}

// NewStruct is a <struct> of members, in order.
func NewStruct(members ...Member) *Value {
	return &Value{Kind: Struct, Tag: "struct", Members: members}
}

// NewMap is a <struct> of string values, sorted by key for reproducibility.
func NewMap(kv map[string]string) *Value {
	s := NewStruct()
	for _, k := range sortedKeys(kv) {
		s.Members = append(s.Members, Member{k, NewString(kv[k])})
	}
	return s
}

// Equal reports whether two trees say the same thing: same kinds, texts,
// items and members in order. An untagged string and a <string> are equal,
// as are <int>, <i4>, <i8> and an untagged integer.
func (v *Value) Equal(w *Value) bool {
	if v == nil || w == nil {
		return v == w
	}
	kv, kw := v.Kind, w.Kind
	if kv == Int {
		kv = String
	}
	if kw == Int {
		kw = String
	}
	if kv != kw || v.Text != w.Text || len(v.Items) != len(w.Items) || len(v.Members) != len(w.Members) {
		return false
	}
	for i := range v.Items {
		if !v.Items[i].Equal(w.Items[i]) {
			return false
		}
	}
	for i := range v.Members {
		if v.Members[i].Name != w.Members[i].Name || !v.Members[i].Value.Equal(w.Members[i].Value) {
			return false
		}
	}
	return true
}
