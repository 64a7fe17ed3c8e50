package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// docsDate is the date man pages carry: fixed, so that make docs gives the
// same bytes until the commands change.
var docsDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// newDocsCmd is the hidden command behind make docs: the Markdown
// reference in DIR/cli and the man pages in DIR/man, from the cobra tree.
func newDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write the Markdown reference and man pages (for make docs)",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeDocs(cmd.Root(), args[0])
		},
	}
}

func writeDocs(root *cobra.Command, dir string) error {
	root.DisableAutoGenTag = true
	md, man := filepath.Join(dir, "cli"), filepath.Join(dir, "man")
	for _, d := range []string{md, man} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := doc.GenMarkdownTree(root, md); err != nil {
		return err
	}
	if err := doc.GenManTree(root, &doc.GenManHeader{Title: "XVA", Section: "1", Date: &docsDate, Source: "xva", Manual: "xva manual"}, man); err != nil {
		return err
	}
	return typedManFlags(root, man)
}

// manFlag matches a flag's line in a cobra man page: \fB-q\fP, \fB--quiet\fP[=false].
var manFlag = regexp.MustCompile(`^(?:\\fB-(\w)\\fP, )?\\fB--([\w-]+)\\fP(.*)$`)

// flagValueNames name the value of the flags whose value is not one of a
// few words: what the user types in its place.
var flagValueNames = map[string]string{
	"disk": "DEVICE=PATH", "memory": "SIZE", "name": "NAME", "description": "TEXT", "kernel-cmdline": "TEXT",
	"level": "0-9", "vcpus": "N", "jobs": "N", "url": "https://HOST", "user": "USER", "password-file": "FILE",
	"ca-cert": "FILE", "sr": "UUID", "vm": "UUID", "create-lv": "VG",
}

// typedManFlags rewrites the flag lines of the man pages in dir from cobra's
// --flag="default" and --flag[=false] to the forms a user types (--quiet,
// --format xapi|legacy, --progress[=MODE], --disk DEVICE=PATH), the
// default, where there is one, said in words.
func typedManFlags(root *cobra.Command, dir string) error {
	var cmds []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.IsAvailableCommand() || c == root {
			cmds = append(cmds, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, c := range cmds {
		path := filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i++ {
			m := manFlag.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			f := c.Flags().Lookup(m[2])
			if f == nil {
				f = c.InheritedFlags().Lookup(m[2])
			}
			if f == nil {
				return fmt.Errorf("%s: no flag --%s", path, m[2])
			}
			form, def := typedFlag(c, f)
			lines[i] = form
			if def != "" && strings.HasPrefix(lines[i+1], "\t") {
				lines[i+1] += " (default: " + def + ")"
			}
		}
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// typedFlag returns the roff form of flag f of c as it is typed, and its
// default as words ("" when there is nothing to say).
func typedFlag(c *cobra.Command, f *pflag.Flag) (form, def string) {
	form = `\fB--` + f.Name + `\fP`
	if f.Shorthand != "" {
		form = `\fB-` + f.Shorthand + `\fP, ` + form
	}
	value := flagValueNames[f.Name]
	if words := choices(c, f.Name); words != nil {
		value = strings.Join(words, "|")
	}
	if c.Name() == "unpack" && f.Name == "disk" {
		value = "DEVICE=TARGET"
	}
	if value == "" {
		value = strings.ToUpper(f.Name)
	}
	switch {
	case f.Value.Type() == "bool":
		if f.DefValue == "true" {
			return form, "true; --" + f.Name + "=false turns it off"
		}
		return form, ""
	case f.NoOptDefVal != "":
		form += `[=\fI` + value + `\fP]`
	default:
		form += ` \fI` + value + `\fP`
	}
	switch f.DefValue {
	case "", "[]", "0":
	default:
		def = f.DefValue
	}
	return form, def
}
