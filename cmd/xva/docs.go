package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
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
	return doc.GenManTree(root, &doc.GenManHeader{Title: "XVA", Section: "1", Date: &docsDate, Source: "xva", Manual: "xva manual"}, man)
}
