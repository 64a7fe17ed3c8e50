package main

import (
	"errors"

	"github.com/xva-tools/xva"
)

// errorDocument is what a command given --json prints on stdout when it
// fails before printing its own document (docs/json/error.schema.json).
type errorDocument struct {
	SchemaVersion int       `json:"schema_version"`
	Error         errorJSON `json:"error"`
}

type errorJSON struct {
	Kind       string `json:"kind"`                 // usage, corrupt, unsupported, not-archive, failure, interrupted
	Corruption string `json:"corruption,omitempty"` // for kind corrupt: checksum, truncated, … (xva.Kind)
	Message    string `json:"message"`
	Hint       string `json:"hint,omitempty"`
	Member     string `json:"member,omitempty"`
	Disk       string `json:"disk,omitempty"`
	Offset     int64  `json:"offset"` // disk offset, -1 when unknown
}

func errorDoc(err error, kind, msg, hint string) errorDocument {
	e := errorJSON{Kind: kind, Message: msg, Hint: hint, Offset: -1}
	var ce *xva.CorruptError
	if errors.As(err, &ce) {
		e.Corruption, e.Member, e.Disk, e.Offset = string(ce.Kind), ce.Member, ce.Disk, ce.Offset
	}
	return errorDocument{SchemaVersion: schemaVersion, Error: e}
}
