package main

import (
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

// addModeFlag gives a command that writes files the --mode flag.
func addModeFlag(cmd *cobra.Command) {
	cmd.Flags().String("mode", "0600", "permission bits of the files written, in octal, e.g. 0644 (directories also get x where r is set)")
}

// applyMode sets the mode of the files written from cmd's --mode, if it
// has one.
func applyMode(cmd *cobra.Command) error {
	f := cmd.Flags().Lookup("mode")
	if f == nil {
		return nil
	}
	m, err := strconv.ParseUint(f.Value.String(), 8, 32)
	if err != nil || m > 0o777 {
		return usagef("--mode %q: want octal permission bits such as 0600 or 0644", f.Value.String())
	}
	return xva.SetFileMode(os.FileMode(m))
}
