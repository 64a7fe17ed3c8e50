// Package xapi is a client for a XenServer / XCP-ng pool master: XML-RPC
// sessions and tasks, and the HTTP import and export handlers, with the
// sharp edges of xapi's implementation handled (no chunked encoding, the
// 200 before the body, redirects, half-closing, HOST_IS_SLAVE).
//
// It may import ova only.
package xapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/xva-tools/xva/ova"
)

// Error is a failure xapi reports: an error code and its parameters, from
// an XML-RPC call or a task.
type Error struct {
	Code   string
	Params []string
}

func (e *Error) Error() string {
	if len(e.Params) == 0 {
		return "xapi: " + e.Code
	}
	return fmt.Sprintf("xapi: %s %s", e.Code, strings.Join(e.Params, " "))
}

// Is matches errors by code: errors.Is(err, &xapi.Error{Code: "..."}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Error codes callers branch on.
const (
	CodeHostIsSlave  = "HOST_IS_SLAVE"
	CodeAuthFailed   = "SESSION_AUTHENTICATION_FAILED"
	CodeUUIDInvalid  = "UUID_INVALID"
	CodeSessionInval = "SESSION_INVALID"
)

// maxResponse caps what is read of an XML-RPC response.
// VM.get_all_records of a large pool (thousands of VMs, templates and
// snapshots, each with its boot record and NVRAM) runs to tens of MiB.
const maxResponse = 256 << 20

// encodeCall writes an XML-RPC methodCall.
func encodeCall(method string, args []any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>`)
	b.WriteString(escape(method))
	b.WriteString(`</methodName><params>`)
	for _, a := range args {
		b.WriteString("<param>")
		v, err := toValue(a)
		if err != nil {
			return nil, err
		}
		b.Write(v.Marshal())
		b.WriteString("</param>")
	}
	b.WriteString(`</params></methodCall>`)
	return b.Bytes(), nil
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func escape(s string) string { return escaper.Replace(s) }

func toValue(a any) (*ova.Value, error) {
	switch x := a.(type) {
	case string:
		return ova.NewString(x), nil
	case bool:
		return ova.NewBool(x), nil
	case int:
		return &ova.Value{Kind: ova.Int, Tag: "int", Text: strconv.Itoa(x)}, nil
	case float64:
		return ova.NewDouble(x), nil
	case map[string]string:
		return ova.NewMap(x), nil
	case []string:
		return ova.NewStrings(x...), nil
	case *ova.Value:
		return x, nil
	}
	return nil, fmt.Errorf("xapi: cannot encode %T", a)
}

// decodeResponse reads an XML-RPC methodResponse as xapi writes it: a
// struct {Status: "Success", Value} or {Status: "Failure",
// ErrorDescription: [code, params...]}.
func decodeResponse(r io.Reader) (*ova.Value, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("xapi: the response is over %d MiB, more than xva reads of one call", maxResponse>>20)
	}
	i := bytes.Index(body, []byte("<value"))
	j := bytes.LastIndex(body, []byte("</param>"))
	if i < 0 || j < i {
		return nil, fmt.Errorf("xapi: not an XML-RPC response: %.200q", body)
	}
	v, err := ova.ParseValue(body[i:j])
	if err != nil {
		return nil, fmt.Errorf("xapi: reading the response: %w", err)
	}
	switch v.Field("Status").Str() {
	case "Success":
		return v.Field("Value"), nil
	case "Failure":
		desc := v.Field("ErrorDescription").Strings()
		if len(desc) == 0 {
			return nil, &Error{Code: "UNKNOWN_ERROR"}
		}
		return nil, &Error{Code: desc[0], Params: desc[1:]}
	}
	return nil, errors.New("xapi: response has no Status")
}

// refsOf reads an XML-RPC array of refs, as a task's result holds them:
// <value><array><data><value>OpaqueRef:…</value></data></array></value>.
func refsOf(text string) []string {
	v, err := ova.ParseValue([]byte(strings.TrimSpace(text)))
	if err != nil || v.Kind != ova.Array {
		return nil
	}
	return v.Strings()
}
