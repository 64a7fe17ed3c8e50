package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xva-tools/xva"
)

// newCompletionCmd replaces cobra's default completion command, to give it
// examples like every other command.
func newCompletionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Print a script that makes the shell complete xva's commands, flags and
file names. Load it in the current shell, or save it where the shell looks
for completions (bash-completion's directory, a directory of zsh's $fpath,
fish's completions directory).`,
		Example: `  # Complete in the current bash session
  source <(xva completion bash)

  # Install for fish
  mkdir -p ~/.config/fish/completions && xva completion fish > ~/.config/fish/completions/xva.fish

  # Install for zsh: put _xva in a directory of $fpath
  xva completion zsh > _xva`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(1)(cmd, args); err != nil {
				return usageError{err}
			}
			if err := cobra.OnlyValidArgs(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, w := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			}
			return root.GenFishCompletion(w, true)
		},
	}
	return cmd
}

// flagChoices are the values of the flags that take one of a few words, as
// completion offers them and the man pages show them.
var flagChoices = map[string][]string{
	"format":      {"xapi", "legacy"},
	"compress":    {"none", "gzip", "zstd"},
	"checksum":    {"xxhash", "sha1"},
	"disk-format": writtenFormats(),
	"progress":    {progressAuto, progressBar, progressPlain, progressNone},

	"ovf-version":     {"1.0", "2.0"},
	"ovf-disk-format": {"vmdk", "vhd", "qcow2"},
}

// choices returns the words a flag of cmd takes, or nil.
func choices(cmd *cobra.Command, name string) []string {
	if cmd.Name() == "export" && name == "compress" {
		return []string{"zstd", "gzip"} // what a host can compress with
	}
	if cmd.Name() == "convert" && name == "format" {
		return []string{"xapi", "legacy", "ova", "ovf"}
	}
	return flagChoices[name]
}

// registerCompletions makes the shell complete the values of every flag
// that takes one of a few words, in every command.
func registerCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if words := choices(c, f.Name); words != nil {
				c.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// writtenFormats is the values of --disk-format, from the library's table.
func writtenFormats() []string {
	var r []string
	for _, f := range xva.DiskFormats() {
		if f.Write {
			r = append(r, f.Name)
		}
	}
	return r
}
