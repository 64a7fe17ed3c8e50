package main

import (
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newConvertCmd(g *globals) *cobra.Command {
	f := &outputFlags{}
	cmd := &cobra.Command{
		Use:   "convert IN OUT",
		Short: "Convert an archive between generations, compressions and forms",
		Long: `Convert an XVA archive in one streaming pass, with no temporary disk
images: legacy (version 0.1) to xapi and back, plain to gzip or zstd and
back, directory form to single file and back. Every checksum of the input is
verified on the way; the output appears only when complete.

Current XenServer / XCP-ng hosts import only the xapi generation; hosts
before 2021 also import legacy archives.`,
		Example: `  # Make an old archive importable by a current host
  xva convert old.xva new.xva --format xapi

  # Compress an xapi archive with zstd
  xva convert current.xva current.xva.zst --compress zstd

  # Turn an archive into the legacy directory form
  xva convert current.xva legacy-dir/ --format legacy`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refuseTerminal(args[1]); err != nil {
				return err
			}
			opts, err := f.options(cmd, args[1])
			if err != nil {
				return err
			}
			summary, err := summaryWriter(cmd, g, args[1])
			if err != nil {
				return err
			}
			res, err := xva.Convert(cmd.Context(), args[0], args[1], append(g.options(), opts...)...)
			if err != nil {
				return err
			}
			g.settle()
			return printPackResult(summary, g, res)
		},
	}
	f.register(cmd, "archive generation to write: legacy or xapi (default: the input's)")
	addModeFlag(cmd)
	cmd.Flags().BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}
