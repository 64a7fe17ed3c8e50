package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time by make build (-X main.version=...); a plain
// go build or go install reports the module version instead.
var version = ""

// buildInfo is what xva version reports.
type buildInfo struct {
	SchemaVersion int    `json:"schema_version"`
	Version       string `json:"version"`
	Commit        string `json:"commit"`
	CommitTime    string `json:"commit_time"`
	Modified      bool   `json:"modified"`
	GoVersion     string `json:"go_version"`
	Platform      string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{SchemaVersion: schemaVersion, Version: version, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "" {
		b.Version = bi.Main.Version // "(devel)" when built from a checkout
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func newVersionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print xva's version, the commit it was built from and the Go version",
		Long: `Print the version of xva, the commit it was built from (with "modified"
when the tree had uncommitted changes), the Go version and the platform.
Include it in bug reports.`,
		Example: `  xva version
  xva version --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			if g.json {
				return printJSON(b)
			}
			commit := b.Commit
			if commit == "" {
				commit = "unknown"
			}
			if b.Modified {
				commit += " (modified)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "xva %s\ncommit %s %s\n%s %s\n", b.Version, commit, b.CommitTime, b.GoVersion, b.Platform)
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}
