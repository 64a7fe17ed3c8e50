package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

type uploadFlags struct {
	remote                          remoteFlags
	sr, checksum, network, uuidSeed string
	restore, force, asIs            bool
}

func newUploadCmd(g *globals) *cobra.Command {
	f := &uploadFlags{}
	cmd := &cobra.Command{
		Use:   "upload ARCHIVE|VMDIR|PACKAGE.ova --url https://HOST",
		Short: "Import a VM into a XenServer / XCP-ng pool",
		Long: `Stream a VM to a pool master's /import and print the new VM's uuid.

An archive of the xapi generation is sent as it is, with its exact length.
A legacy archive, a VM directory or an OVF package (an OVA or an .ovf, its
manifest's digests checked on the way) is converted to the xapi generation
on the fly, in one pass, with no temporary files (current hosts no longer
import legacy archives). The VM lands in the SR given by --sr (its uuid),
or in the pool's default SR.

The password comes from --password-file, XVA_PASSWORD, or a prompt, never
from the command line. The host's certificate is verified unless
--insecure; --ca-cert adds a CA. The session and the task are cleaned up
at the end, also on failure and on Ctrl-C.`,
		Example: `  # Import an archive into the default SR
  XVA_PASSWORD=secret xva upload web.xva --url https://xenserver.example.com

  # Import an unpacked VM directory into a given SR, keeping its uuid
  xva upload unpacked/ --url https://pool.example.com --sr 0e8e5b3c-0d7c-4e55-a1ef-1c2a6f1f3b9a --restore --password-file pw.txt`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpload(cmd, g, f, args[0])
		},
	}
	f.remote.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.sr, "sr", "", "uuid of the SR to import into (default: the pool's default SR)")
	fl.BoolVar(&f.restore, "restore", false, "keep the VM's uuid and MAC addresses (restore a backup)")
	fl.BoolVar(&f.force, "force", false, "import even if block checksums do not match (xapi then keeps what it made)")
	fl.BoolVar(&f.asIs, "as-is", false, "send an archive file exactly as it is, a legacy one too (for hosts before 2021, which import legacy archives)")
	fl.StringVar(&f.checksum, "checksum", "", "block hash to send: xxhash or sha1 (default: what every host of the pool reads; sha1 for hosts that say they are older than xapi 1.250)")
	fl.StringVar(&f.network, "network", "", "give the VM a network interface on this network (its name or uuid) after the import")
	fl.StringVar(&f.uuidSeed, "uuid-seed", "", "derive the uuids of a VM converted on the fly from this seed (default: random)")
	fl.BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

func runUpload(cmd *cobra.Command, g *globals, f *uploadFlags, input string) error {
	ctx := cmd.Context()
	if _, err := f.remote.checkURL(); err != nil {
		return err
	}
	if _, err := os.Stat(input); err != nil && !xva.IsObjectURL(input) {
		return err
	}
	uo := xva.UploadOptions{SR: f.sr, Restore: f.restore, Force: f.force, AsIs: f.asIs, Network: f.network}
	if f.checksum != "" {
		sum, err := xva.ParseChecksum(f.checksum)
		if err != nil {
			return usageError{err}
		}
		uo.Checksum = sum
	}
	c, err := f.remote.login(ctx, g)
	if err != nil {
		return err
	}
	defer logout(c)
	// The display is made when the length is known: at the first report.
	var show func(int64, float64)
	started := false
	uo.Progress = func(sent, total int64, task float64) {
		if !started {
			show, started = g.rep.transfer("upload", total), true
		}
		if show != nil {
			show(sent, task)
		}
	}
	res, err := xva.Upload(ctx, c, input, uo, xva.WithJobs(g.jobs), xva.WithLogger(g.log), xva.WithUUIDSeed(f.uuidSeed))
	g.settle()
	var legacy *xva.LegacyAsIsError
	if errors.As(err, &legacy) {
		return withHint(err, hintLegacy+" (drop --as-is)")
	}
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(struct {
			SchemaVersion int     `json:"schema_version"`
			Ref           string  `json:"ref"`
			UUID          string  `json:"uuid"`
			BytesSent     int64   `json:"bytes_sent"`
			Seconds       float64 `json:"seconds"`
			Converted     bool    `json:"converted"`
			Checksum      string  `json:"checksum,omitempty"`
			VIFs          int     `json:"vifs"`
		}{schemaVersion, res.VMRef, res.VMUUID, res.Sent, res.Seconds, res.Converted, res.Checksum, res.VIFs})
	}
	fmt.Fprintln(cmd.OutOrStdout(), printable(res.VMUUID))
	how := "sent as it is"
	if res.Converted {
		how = "converted on the fly, " + res.Checksum + " block hashes"
	}
	fmt.Fprintf(g.chatter(cmd.ErrOrStderr()), "imported %s (%s %s in %.1fs) into %s\n", printable(res.VMRef),
		humanize.IBytes(uint64(res.Sent)), how, res.Seconds, c.Host())
	if res.VIFs == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "xva: note: the VM has no network interface; give it one with --network NAME|UUID, or xe vif-create\n")
	}
	return nil
}
