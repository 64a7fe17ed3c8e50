package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// printable escapes what a terminal would act on rather than show, in a
// string that came from an archive, an image, a server or a file name and
// is printed for a person: C0 and C1 control characters (escape sequences
// can set the window title, clear the screen, move the cursor and print a
// forged verdict), DEL, the bidirectional overrides and isolates (U+202E
// shows text reversed), the line and paragraph separators and bytes that
// are not UTF-8. They are written as Go escapes (\x1b, \u202e, \n), so
// the text stays one line. Every string from outside printed without
// --json goes through it; --json carries the exact strings,
// JSON-escaped.
func printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case escapedRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == utf8.RuneError && n == 1 || escapedRune(r) {
			return true
		}
		i += n
	}
	return false
}

// escapedRune: C1 controls, the bidirectional marks, embeddings,
// overrides and isolates, and the line and paragraph separators.
func escapedRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r == 0x061c || r == 0x200e || r == 0x200f ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x2028 || r == 0x2029
}
