package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
)

func newCatCmd(g *globals) *cobra.Command {
	var offset, length string
	cmd := &cobra.Command{
		Use:   "cat ARCHIVE DEVICE",
		Short: "Write a byte range of one disk of an archive to standard output",
		Long: `Write one disk of an archive (or the byte range --offset and --length give)
to standard output, reading the archive at random: only the blocks or
chunk pieces that hold the range are read, each checked (an xapi block
against its hash, a legacy chunk's piece against its CRC-32) before its
bytes are written. A range that fails its check stops the command with
exit 3 naming the member and offset. ARCHIVE is a tar file (plain or
gzip- or zstd-compressed) or an archive directory, of either generation,
on this machine or in object storage (s3://BUCKET/KEY); gzip files without
xva's piece index, and a zstd stream from another tool (a host's export,
the zstd program), are decoded once to build an index of restart points,
kept in $XDG_CACHE_HOME/xva; zstd archives xva wrote are read through
their seek table. A stream ('-') cannot be read at random. Holes of the
disk are written as zeros.`,
		Example: `  # The first sector of the boot disk (its partition table)
  xva cat backup.xva sda --length 512 | od -A d -t x1 | head

  # 64 KiB from 1 MiB into the second disk, to a file
  xva cat backup.xva sdb --offset 1MiB --length 64KiB > piece.bin`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			off, n, err := catRange(cmd, offset, length)
			if err != nil {
				return err
			}
			if err := refuseTerminal("-"); err != nil {
				return err
			}
			ad, err := xva.OpenDisks(cmd.Context(), args[0], g.options()...)
			if err != nil {
				return err
			}
			defer ad.Close()
			reportIndexes(g, cmd.ErrOrStderr(), ad)
			d := ad.Disk(args[1])
			if d == nil {
				return usagef("%s has no disk %s (it has %s)", args[0], args[1], devices(ad))
			}
			if off > d.Size() {
				return usagef("--offset %d is past the end of %s (%d bytes)", off, args[1], d.Size())
			}
			if n < 0 || off+n > d.Size() {
				n = d.Size() - off
			}
			w := bufio.NewWriterSize(os.Stdout, 1<<20)
			if _, err := io.Copy(w, io.NewSectionReader(d, off, n)); err != nil {
				return err
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&offset, "offset", "0", "where to start in the disk: bytes, or a size such as 2GiB")
	cmd.Flags().StringVar(&length, "length", "", "how many bytes to write (default: to the disk's end)")
	return cmd
}

// catRange parses --offset and --length; a length of -1 means to the end.
func catRange(cmd *cobra.Command, offset, length string) (int64, int64, error) {
	off, err := humanize.ParseBytes(offset)
	if err != nil || off > 1<<62 {
		return 0, 0, usagef("--offset %q: want bytes or a size such as 2GiB", offset)
	}
	n := int64(-1)
	if cmd.Flags().Changed("length") {
		v, err := humanize.ParseBytes(length)
		if err != nil || v > 1<<62 {
			return 0, 0, usagef("--length %q: want bytes or a size such as 1MiB", length)
		}
		n = int64(v)
	}
	return int64(off), n, nil
}

// devices names an archive's disks for a message.
func devices(ad *xva.ArchiveDisks) string {
	var names []string
	for _, d := range ad.Disks {
		names = append(names, printable(d.Device))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// reportIndexes says what indexes opening an archive at random built, and
// how long the first access took, so a user knows the next is quick.
func reportIndexes(g *globals, w io.Writer, ad *xva.ArchiveDisks) {
	x := ad.Indexed
	if x == nil || x.Files == 0 {
		return
	}
	kept := "not kept (no cache directory)"
	if x.Cache != "" {
		kept = "kept in " + printable(x.Cache) + " for the next time"
	}
	what := plural(x.Files-x.Zstd, "gzip file")
	switch {
	case x.Zstd == x.Files:
		what = plural(x.Zstd, "zstd stream")
	case x.Zstd > 0:
		what += " and " + plural(x.Zstd, "zstd stream")
	}
	fmt.Fprintf(g.chatter(w), "xva: indexed %s (%s) in %.1f s on this first access; %s\n",
		what, humanize.IBytes(uint64(x.Bytes)), x.Took.Seconds(), kept)
}
