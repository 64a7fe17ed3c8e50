package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/xapi"
)

type uploadFlags struct {
	remote               remoteFlags
	sr                   string
	restore, force, asIs bool
}

func newUploadCmd(g *globals) *cobra.Command {
	f := &uploadFlags{}
	cmd := &cobra.Command{
		Use:   "upload ARCHIVE|VMDIR --url https://HOST",
		Short: "Import a VM into a XenServer / XCP-ng pool",
		Long: `Stream a VM to a pool master's /import and print the new VM's uuid.

An archive of the xapi generation is sent as it is, with its exact length.
A legacy archive or a VM directory is converted to the xapi generation on
the fly, in one pass, with no temporary files (current hosts no longer
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
	fl.BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

func runUpload(cmd *cobra.Command, g *globals, f *uploadFlags, input string) error {
	ctx := cmd.Context()
	if _, err := f.remote.checkURL(); err != nil {
		return err
	}
	if _, err := os.Stat(input); err != nil {
		return err
	}
	c, err := f.remote.login(ctx, g)
	if err != nil {
		return err
	}
	defer logout(c)
	sr := ""
	if f.sr != "" {
		if sr, err = c.SRByUUID(ctx, f.sr); err != nil {
			return fmt.Errorf("SR %s: %w", f.sr, err)
		}
	}
	body, length, legacy, produced, err := uploadBody(ctx, g, input, f.asIs)
	if err != nil {
		return err
	}
	defer body.Close()
	show := g.rep.transfer("upload", length)
	res, err := c.Import(ctx, body, xapi.ImportOptions{SR: sr, Restore: f.restore, Force: f.force, Length: length,
		Progress: show})
	g.settle()
	// Whatever became of the upload, stop the conversion feeding it: its
	// next write fails and it returns.
	body.Close()
	if perr := produced(); perr != nil && !errors.Is(perr, io.ErrClosedPipe) {
		return perr // the archive could not be read: that is the cause
	}
	if err != nil && legacy {
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
		}{schemaVersion, res.VMRef, res.VMUUID, res.Sent, res.Seconds})
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.VMUUID)
	fmt.Fprintf(g.chatter(cmd.ErrOrStderr()), "imported %s (%s sent in %.1fs) into %s\n", res.VMRef,
		humanize.IBytes(uint64(res.Sent)), res.Seconds, c.Host())
	return nil
}

// uploadBody is what goes to /import: an xapi archive file (or, asIs, any
// archive file) as it is, with its length; anything else converted on the
// fly, length unknown. legacy reports a legacy archive sent as it is.
// produced reports the conversion's error once the body has been read.
func uploadBody(ctx context.Context, g *globals, input string, asIs bool) (body io.ReadCloser, length int64, legacy bool, produced func() error, err error) {
	st, err := os.Stat(input)
	if err != nil {
		return nil, 0, false, nil, err
	}
	if st.Mode().IsRegular() {
		info, err := xva.Info(ctx, input)
		if err != nil {
			return nil, 0, false, nil, err
		}
		if info.Generation == xva.XAPI || asIs {
			f, err := os.Open(input)
			if err != nil {
				return nil, 0, false, nil, err
			}
			return f, st.Size(), info.Generation == xva.Legacy, func() error { return nil }, nil
		}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := xva.StreamXapi(ctx, input, pw, xva.WithJobs(g.jobs), xva.WithLogger(g.log))
		pw.CloseWithError(err)
		done <- err
	}()
	return pr, -1, false, func() error { return <-done }, nil
}
