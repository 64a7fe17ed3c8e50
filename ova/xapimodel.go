//lint:file-ignore ST1005 the errors quote xapi's own messages exactly, capitals included
package ova

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The record schema xapi decodes an import with, read from xen-api's
// datamodel (the commit is in the file). Every field of a class but the
// internal-only ones is in the record; a field without a datamodel default
// (and not a set of refs, which defaults to []) must be present, or the
// import fails with "Field NAME not present in rpc" (gen_api.ml:192-205,
// 420-431).
//
//go:embed testdata/xapi-datamodel.json
var datamodelJSON []byte

// Datamodel is the part of xen-api's datamodel an import decodes: the
// fields of the classes xva writes.
type Datamodel struct {
	Commit  string `json:"xen_api_commit"`
	Classes map[string]struct {
		Fields fieldTable `json:"fields"`
	} `json:"classes"`
}

// fieldTable keeps the fields in the datamodel's order, the order xapi's
// generated decoder reads them in (gen_api.ml:244-245), so that the first
// failure reported is xapi's.
type fieldTable struct {
	names []string
	specs map[string]FieldSpec
}

func (t *fieldTable) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	t.specs = map[string]FieldSpec{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		var spec FieldSpec
		if err := dec.Decode(&spec); err != nil {
			return err
		}
		t.names = append(t.names, name)
		t.specs[name] = spec
	}
	return nil
}

// FieldSpec is one field of a record.
type FieldSpec struct {
	Type     string `json:"type"` // bool, int, float, string, datetime, ref(x), enum n(a|b), set(t), map(k->v)
	Required bool   `json:"required"`
	Source   string `json:"source"` // where the datamodel defines it
}

var (
	modelOnce sync.Once
	model     *Datamodel
)

// XapiDatamodel returns the datamodel table.
func XapiDatamodel() *Datamodel {
	modelOnce.Do(func() {
		model = &Datamodel{}
		if err := json.Unmarshal(datamodelJSON, model); err != nil {
			panic("ova: the embedded datamodel does not parse: " + err.Error())
		}
	})
	return model
}

// Fields returns the fields of class, or nil for a class the table does
// not hold.
func (d *Datamodel) Fields(class string) map[string]FieldSpec {
	c, ok := d.Classes[class]
	if !ok {
		return nil
	}
	return c.Fields.specs
}

// DecodeRecord reads rec as xapi's generated <class>_t_of_rpc does and
// returns the first failure in xapi's words: a required field that is
// absent, or a field whose value its type does not accept. Fields the
// table does not know are ignored, as xapi ignores them. Values xapi takes
// but reads otherwise than they say are returned as misread, one line
// each; they do not stop the decoding.
func (d *Datamodel) DecodeRecord(class string, rec *Value) (misread []string, err error) {
	if rec == nil || rec.Kind != Struct {
		return nil, failure("Expected Dictionary")
	}
	// Hashtbl.replace: a repeated member's last value wins.
	last := map[string]*Value{}
	for _, m := range rec.Members {
		last[m.Name] = m.Value
	}
	for _, name := range d.Classes[class].Fields.names {
		spec := d.Fields(class)[name]
		v, ok := last[name]
		if !ok {
			if spec.Required {
				return misread, &FieldError{Field: name, Err: failure("Field %s not present in rpc", name)}
			}
			continue
		}
		var mr *MisreadError
		switch err := DecodeValue(spec.Type, v); {
		case errors.As(err, &mr):
			misread = append(misread, name+": "+mr.What)
		case err != nil:
			return misread, &FieldError{Field: name, Err: err}
		}
	}
	return misread, nil
}

// OCamlError is an exception xapi's decoder raises, as the client sees it
// inside INTERNAL_ERROR: Failure("msg") or "Invalid argument: msg"
// (exnHelper.ml:69-86).
type OCamlError struct {
	Invalid bool // Invalid_argument rather than Failure
	Msg     string
}

func (e *OCamlError) Error() string { return e.Msg }

// Printed is the exception as xapi prints it to the client.
func (e *OCamlError) Printed() string {
	if e.Invalid {
		return "Invalid argument: " + e.Msg
	}
	return fmt.Sprintf("Failure(%q)", e.Msg)
}

func failure(format string, args ...any) error {
	return &OCamlError{Msg: fmt.Sprintf(format, args...)}
}

// DecodeValue checks v against a field type as ocaml-rpc's decoders do
// (rpc 10.2.0 src/lib/rpc.ml and ppx_deriving_rpc, with xapi's XML-RPC
// reader src/lib/xmlrpc.ml): what they refuse is an *OCamlError in their
// words; what they take but read otherwise, a *MisreadError.
func DecodeValue(typ string, v *Value) error {
	base, arg := splitType(typ)
	switch base {
	case "bool":
		// Rpc.bool_of_rpc takes only Bool: <boolean>; its text "1" is
		// true and anything else false.
		if v.Kind != Bool {
			return failure("Expected bool, got '%s'", rpcShow(v))
		}
		if v.Text != "0" && v.Text != "1" {
			return &MisreadError{fmt.Sprintf("<boolean>%s</boolean> is read as false", v.Text)}
		}
	case "int":
		// Rpc.int64_of_rpc: Int, or String through Int64.of_string.
		if v.Kind != Int && v.Kind != String {
			return failure("Expected int64, got '%s'", rpcShow(v))
		}
		if _, ok := OCamlInt64(v.Text); !ok {
			return failure("Int64.of_string")
		}
	case "float":
		if v.Kind != Double && v.Kind != Int && v.Kind != String {
			return failure("Expected float, got '%s'", rpcShow(v))
		}
		if _, err := strconv.ParseFloat(strings.ReplaceAll(v.Text, "_", ""), 64); err != nil {
			return failure("float_of_string")
		}
	case "string", "ref":
		if v.Kind != String {
			return failure("Expected string, got '%s'", rpcShow(v))
		}
	case "datetime":
		if v.Kind != String && v.Kind != DateTime {
			return failure("Date.t_of_rpc")
		}
		if !iso8601(v.Text) {
			return &OCamlError{Invalid: true, Msg: "Clock.Date.of_iso8601: " + v.Text}
		}
	case "enum":
		if v.Kind != String || !enumMatches(arg, v.Text) {
			return failure("Unknown tag/contents")
		}
	case "set":
		if v.Kind != Array {
			return failure("Expecting Rpc.Enum, but found '%s'", rpcShow(v))
		}
		for _, it := range v.Items {
			if err := DecodeValue(arg, it); err != nil {
				return err
			}
		}
	case "map":
		// Every map of these classes is a Dict: string and ref keys, and
		// VM.blocked_operations by a hand-written override (gen_api.ml:26-73).
		if v.Kind != Struct {
			return failure("Expecting Rpc.Dict, but found '%s'", rpcShow(v))
		}
		kt, vt, _ := strings.Cut(arg, "->")
		for _, m := range v.Members {
			if err := DecodeValue(kt, NewString(m.Name)); err != nil {
				return err
			}
			if err := DecodeValue(vt, m.Value); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("ova: the datamodel table has a type %q xva cannot check", typ)
	}
	return nil
}

// FieldError is a field of a record xapi cannot decode.
type FieldError struct {
	Field string
	Err   error // an *OCamlError
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Printed is the exception as xapi prints it to the client.
func (e *FieldError) Printed() string {
	var oe *OCamlError
	if errors.As(e.Err, &oe) {
		return oe.Printed()
	}
	return e.Err.Error()
}

// MisreadError is a value xapi takes without complaint but reads otherwise
// than it says.
type MisreadError struct{ What string }

func (e *MisreadError) Error() string { return e.What }

// splitType splits "set(ref(vbd))" into "set", "ref(vbd)" and
// "enum vbd_mode(RO|RW)" into "enum", "RO|RW".
func splitType(t string) (string, string) {
	i := strings.IndexAny(t, " (")
	if i < 0 {
		return t, ""
	}
	base, rest := t[:i], t[i:]
	if base == "enum" {
		_, rest, _ = strings.Cut(rest, "(")
		return base, strings.TrimSuffix(rest, ")")
	}
	return base, strings.TrimSuffix(strings.TrimPrefix(rest, "("), ")")
}

// enumMatches compares as ppx_deriving_rpc does: the input lowercased
// against each constructor, the value stripped of characters outside
// [A-Za-z0-9_] and lowercased (ocaml_utils.ml:28-41).
func enumMatches(values, text string) bool {
	in := strings.ToLower(text)
	for _, v := range strings.Split(values, "|") {
		c := strings.Map(func(r rune) rune {
			if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return -1
		}, v)
		if strings.ToLower(c) == in {
			return true
		}
	}
	return false
}

// OCamlInt64 parses s as OCaml's Int64.of_string does: an optional sign,
// then decimal digits, or 0x, 0o, 0b or 0u and digits of that base, with
// '_' allowed after the first digit; no spaces.
func OCamlInt64(s string) (int64, bool) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	base, unsigned := 10, false
	if len(s) > 1 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		case 'u', 'U':
			unsigned = true
		}
		if base != 10 || unsigned {
			s = s[2:]
		}
	}
	if s == "" || s[0] == '_' {
		return 0, false
	}
	u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), base, 64)
	if err != nil {
		return 0, false
	}
	// Decimal must fit a signed int64; other bases wrap, as in OCaml.
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	if base == 10 && !unsigned && u > limit {
		return 0, false
	}
	n := int64(u)
	if neg {
		n = -n
	}
	return n, true
}

// iso8601 reports whether Clock.Date.of_iso8601 takes s (date.ml:44-84).
// Its fast path, for text whose fifth character is not '-' and that ends
// in Z, is a Scanf of xapi's own 19700101T00:00:00Z with the date checked;
// anything else has a compact date written with dashes and a missing zone
// taken as Z, and goes to RFC 3339.
func iso8601(s string) bool {
	if len(s) > 5 && s[4] != '-' && strings.HasSuffix(s, "Z") {
		_, err := time.Parse("20060102T15:04:05Z", s)
		return err == nil
	}
	if len(s) >= 9 && s[4] != '-' && s[8] == 'T' {
		s = s[:4] + "-" + s[4:6] + "-" + s[6:]
	}
	if !strings.HasSuffix(s, "Z") && !strings.ContainsAny(s[min(len(s), 19):], "+-") {
		s += "Z"
	}
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// rpcShow renders v as ocaml-rpc's Rpc.to_string does (rpc.ml:158-171).
func rpcShow(v *Value) string {
	switch v.Kind {
	case String:
		return "S(" + v.Text + ")"
	case Int:
		return "I(" + v.Text + ")"
	case Bool:
		return "B(" + strconv.FormatBool(v.Text == "1") + ")"
	case Double:
		f, _ := strconv.ParseFloat(v.Text, 64)
		return "F(" + strconv.FormatFloat(f, 'g', 6, 64) + ")"
	case DateTime:
		return "D(" + v.Text + ")"
	case Base64:
		return "B64(" + v.Text + ")"
	case Array:
		parts := make([]string, len(v.Items))
		for i, it := range v.Items {
			parts[i] = rpcShow(it)
		}
		return "[" + strings.Join(parts, ";") + "]"
	case Struct:
		parts := make([]string, len(v.Members))
		for i, m := range v.Members {
			parts[i] = m.Name + ":" + rpcShow(m.Value)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return v.Text
}
