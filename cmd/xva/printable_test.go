package main

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"xvda":                           "xvda",
		"café ünïcode 名前":                "café ünïcode 名前",
		"\x1b]0;owned\x07":               `\x1b]0;owned\x07`,
		"a\nOK       b":                  `a\nOK       b`,
		"tab\there\r":                    `tab\there\r`,
		"\u009b2J":                       `\u009b2J`,
		"evil\u202egpj.exe":              `evil\u202egpj.exe`,
		"\u2066x\u2069 \u200e\u061c\x7f": `\u2066x\u2069 \u200e\u061c\x7f`,
		"bad \xff\xfe utf8":              `bad \xff\xfe utf8`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
