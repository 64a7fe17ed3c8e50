package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newServeCmd(g *globals) *cobra.Command {
	var listen, certFile, keyFile, maxMemory string
	cmd := &cobra.Command{
		Use:   "serve ARCHIVE",
		Short: "Export every disk of an archive read-only over NBD, without unpacking it",
		Long: `Serve every disk of an archive read-only over the NBD protocol, each under
its device's name, until Ctrl-C: attach one, mount it, or copy from it at
once, without unpacking the archive. Only the blocks or chunk pieces a
client reads are read, each checked first (an xapi block against its hash;
a legacy chunk's piece against its CRC-32); a range that fails its check
is an I/O error for that read (the client sees EIO), logged on stderr with
its member and offset, and the rest goes on being served. Clients learn
where the holes are (NBD_CMD_BLOCK_STATUS, base:allocation), so copies stay
sparse.

ARCHIVE is a tar file (plain, gzip- or zstd-compressed) or an archive
directory, of either generation, on this machine or in object storage
(s3://BUCKET/KEY, read by ranged GETs). Gzip files without xva's piece
index (the archive compressed as a whole, chunks made by split and gzip)
and one zstd stream from another tool (a host's export, the zstd program)
are decoded once to build an index of restart points, kept in
$XDG_CACHE_HOME/xva for the next time. Zstd archives xva wrote are read
through their seek table. A stream ('-') cannot be read at random.

--listen unix:PATH (default: a socket in the temporary directory) or
tcp:HOST:PORT (HOST 127.0.0.1 when empty: give an address to serve others);
--tls-cert and --tls-key make clients use TLS. --max-memory bounds the
bytes the replies to reads hold at once, every client together: a read
waits for room rather than failing. The URIs to use are printed,
with the commands to attach and mount; --json prints them as a document
(docs/json/serve.schema.json) before serving.`,
		Example: `  # Serve a backup's disks, and copy one out with nbdcopy (holes stay holes)
  xva serve backup.xva --listen unix:backup.sock & until [ -S backup.sock ]; do sleep 0.1; done; nbdcopy 'nbd+unix:///sda?socket=backup.sock' sda.raw; kill $!

  # Compare a disk inside the archive with its image, without unpacking
  xva serve backup.xva --listen unix:b.sock & until [ -S b.sock ]; do sleep 0.1; done; qemu-img compare -f raw 'nbd+unix:///sdb?socket=b.sock' data.img; kill $!`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			so := xva.ServeOptions{Listen: listen, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
			mem, err := humanize.ParseBytes(maxMemory)
			if err != nil || mem < xva.MinServeMemory || mem > 1<<50 {
				return usagef("--max-memory %q: want a size of at least 32MiB (the longest read a client may ask for), such as 256MiB", maxMemory)
			}
			so.MaxMemory = int64(mem)
			if so.Listen == "" {
				so.Listen = "unix:" + filepath.Join(os.TempDir(), fmt.Sprintf("xva-%d.sock", os.Getpid()))
			}
			if (certFile == "") != (keyFile == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			if certFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("loading the TLS certificate: %w", err)
				}
				so.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			ready := func(sv xva.Serving) {
				spec, disks := sv.Listen, sv.Disks
				reportIndexes(g, cmd.ErrOrStderr(), &xva.ArchiveDisks{Indexed: sv.Indexed})
				if g.json {
					printJSON(struct {
						SchemaVersion int              `json:"schema_version"`
						Archive       string           `json:"archive"`
						Listen        string           `json:"listen"`
						TLS           bool             `json:"tls"`
						Exports       []xva.ServedDisk `json:"exports"`
					}{schemaVersion, args[0], spec, so.TLS != nil, disks})
					return
				}
				printServing(cmd.OutOrStdout(), g, args[0], spec, disks)
			}
			err = xva.ServeNBD(cmd.Context(), args[0], so, ready, g.options()...)
			if err == nil && cmd.Context().Err() != nil {
				fmt.Fprintln(g.chatter(cmd.ErrOrStderr()), "xva: stopped serving")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "unix:PATH or tcp:HOST:PORT (default: a Unix socket in the temporary directory)")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "serve with TLS: the certificate (PEM)")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "serve with TLS: its private key (PEM)")
	cmd.Flags().StringVar(&maxMemory, "max-memory", "256MiB", "bytes the replies to reads hold at once, all clients together; a read waits for room")
	cmd.Flags().BoolVar(&g.json, "json", false, "print the exports and their URIs as JSON, then serve")
	return cmd
}

// printServing says what is served where, and how to use it.
func printServing(w io.Writer, g *globals, archive, spec string, disks []xva.ServedDisk) {
	fmt.Fprintf(w, "serving %d disks of %s read-only on %s; Ctrl-C stops\n\n", len(disks), printable(archive), printable(spec))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSIZE\tURI")
	for _, d := range disks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", printable(d.Device), humanize.IBytes(uint64(d.Size)), printable(d.URI))
	}
	tw.Flush()
	if g.quiet || len(disks) == 0 {
		return
	}
	uri := disks[0].URI
	fmt.Fprintf(w, "\ncopy a disk:     nbdcopy '%s' disk.raw\n", uri)
	fmt.Fprintf(w, "compare:         qemu-img compare -f raw '%s' disk.raw\n", uri)
	fmt.Fprintf(w, "mount (FUSE):    mkdir m && nbdfuse m/ '%s' &  (then mount -o ro,loop m/nbd /mnt)\n", uri)
	fmt.Fprintf(w, "inspect files:   guestmount --ro --format=raw -a '%s' -i /mnt\n", uri)
	fmt.Fprintf(w, "kernel device:   modprobe nbd && qemu-nbd --read-only -f raw -c /dev/nbd0 '%s'\n", uri)
	if strings.HasPrefix(spec, "unix:") {
		fmt.Fprintf(w, "             or: nbd-client -unix %s /dev/nbd0 -N %s -readonly\n", strings.TrimPrefix(spec, "unix:"), disks[0].Device)
	}
}
