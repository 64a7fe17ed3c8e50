package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/xva-tools/xva"
)

type packFlags struct {
	name, description, memory, kernelCmdline string
	vcpus                                    int
	hvm                                      bool
	disks                                    []string
	out                                      outputFlags
}

// outputFlags are the flags of the commands that write an archive.
type outputFlags struct {
	format, compress, checksum string
	uuidSeed                   string
	level                      int
	dir, force                 bool
}

func (f *outputFlags) register(cmd *cobra.Command, formatHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "", formatHelp)
	fl.StringVar(&f.compress, "compress", "none", "compress an xapi archive as a whole: none, gzip or zstd")
	fl.StringVar(&f.checksum, "checksum", "xxhash", "block hash of an xapi archive: xxhash (current hosts) or sha1")
	fl.IntVar(&f.level, "level", 6, "gzip compression level of legacy chunks, 0-9")
	fl.BoolVar(&f.dir, "dir", false, "write the directory form of a legacy archive")
	fl.BoolVar(&f.force, "force", false, "replace OUTPUT if it is an existing file")
	fl.StringVar(&f.uuidSeed, "uuid-seed", "", "derive the uuids of a VM converted to the xapi generation from this seed, for reproducible archives (default: random; give each VM its own seed)")
}

// options checks the flags and turns them into library options. An
// OUTPUT ending in .gz or .zst asks for that whole-archive compression
// unless --compress says otherwise, and a --compress that contradicts the
// name is refused: a plain tar named x.xva.zst fools every reader.
func (f *outputFlags) options(cmd *cobra.Command, output string) ([]xva.Option, error) {
	fl := cmd.Flags()
	opts := []xva.Option{xva.WithDirectory(f.dir), xva.WithOverwrite(f.force), xva.WithUUIDSeed(f.uuidSeed)}
	if fl.Changed("level") {
		if f.level < 0 || f.level > 9 {
			return nil, usagef("--level must be 0-9, got %d", f.level)
		}
		opts = append(opts, xva.WithLevel(f.level))
	}
	if f.format != "" {
		g, err := xva.ParseGeneration(f.format)
		if err != nil {
			return nil, usagef("--format %q: want legacy or xapi", f.format)
		}
		opts = append(opts, xva.WithFormat(g))
	}
	switch f.compress {
	case "none", "gzip", "zstd":
	default:
		return nil, usagef("--compress %q: want none, gzip or zstd", f.compress)
	}
	compress := f.compress
	if named := compressionOfName(output); named != "" || fl.Changed("compress") {
		switch {
		case !fl.Changed("compress"):
			compress = named
		case named != "" && named != compress:
			return nil, usagef("--compress %s contradicts OUTPUT %s, whose name says %s: rename it or change --compress", compress, output, named)
		}
	}
	opts = append(opts, xva.WithCompression(compress))
	c, err := xva.ParseChecksum(f.checksum)
	if err != nil {
		return nil, usagef("--checksum %q: want xxhash or sha1", f.checksum)
	}
	return append(opts, xva.WithChecksum(c)), nil
}

// compressionOfName is the whole-archive compression an output's name
// announces: gzip for .gz, zstd for .zst, else "".
func compressionOfName(output string) string {
	switch {
	case strings.HasSuffix(output, ".gz"):
		return "gzip"
	case strings.HasSuffix(output, ".zst"):
		return "zstd"
	}
	return ""
}

// dirOutput reports whether OUTPUT asks for an archive directory.
func (f *outputFlags) dirOutput(output string) bool {
	if f.dir || strings.HasSuffix(output, "/") {
		return true
	}
	st, err := os.Stat(output)
	return err == nil && st.IsDir()
}

// refuseTerminal refuses to write an archive to standard output when it is
// a terminal: binary on a terminal is never what was meant.
func refuseTerminal(output string) error {
	if output == "-" && term.IsTerminal(int(os.Stdout.Fd())) {
		return usagef("OUTPUT '-' is standard output, which is a terminal here: redirect it (> web.xva, | ssh host ...) or give a file name")
	}
	return nil
}

func newPackCmd(g *globals) *cobra.Command {
	f := &packFlags{}
	cmd := &cobra.Command{
		Use:   "pack [VMDIR] OUTPUT",
		Short: "Build an XVA archive from a VM directory or from disk images",
		Long: `Build an XVA archive, in either generation:

  xapi (--format xapi, the default for --disk flags): the XML-RPC ova.xml
  and 1 MiB blocks each followed by its XXH64 (or --checksum sha1) hash,
  optionally compressed as a whole with --compress gzip|zstd (implied by an
  OUTPUT ending in .gz or .zst); what every current XenServer / XCP-ng host
  exports and imports.

  legacy (--format legacy): ova.xml version 0.1 plus each disk cut into
  1e9-byte gzip chunks (--level sets their gzip level), compressed on all
  cores; what XenServer hosts before 2021 import. Only this generation has
  a directory form.

All-zero stretches cost no compression and holes in the images are never
read.

The VM comes either from a VM directory (what 'xva unpack' writes: ova.xml
plus one image per disk named after its device, ` + readExts() + `; packed in the
generation of its ova.xml unless --format says otherwise), or from --disk
flags and the VM settings given as flags; the first --disk is the boot disk.
Images are raw files, VHDs or VHDXs (fixed, dynamic or differencing),
VMDKs (monolithicSparse, streamOptimized, monolithicFlat,
twoGbMaxExtentSparse or twoGbMaxExtentFlat) or qcow2 images (with their
backing files), recognised by content.

OUTPUT is a single tar file, '-' for standard output (not a terminal), or,
for a legacy archive, the directory form when it ends in '/', names an
existing empty directory, or --dir is given.
Nothing appears under OUTPUT until the archive is complete. The same inputs
and flags always give the same bytes, whatever --jobs is.`,
		Example: `  # Pack two raw images into db.xva, for a current XenServer / XCP-ng host
  xva pack --name db --memory 512MiB --vcpus 2 --disk sda=root.img --disk sdb=data.img db.xva

  # Rebuild an archive from an unpacked VM directory, in its own generation
  xva pack unpacked/ rebuilt.xva

  # zstd-compressed as a whole (the .zst name implies --compress zstd)
  xva pack --disk xvda=root.img --name db db.xva.zst

  # For a host before 2021: the legacy generation, in its directory form
  xva pack --format legacy --disk sda=root.img --name db db-dir/`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPack(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "VM name (default: OUTPUT's base name)")
	fl.StringVar(&f.description, "description", "", "VM description")
	fl.StringVar(&f.memory, "memory", "512MiB", "memory, in bytes or with a unit (512MiB, 2GiB)")
	fl.IntVar(&f.vcpus, "vcpus", 1, "virtual CPUs")
	fl.BoolVar(&f.hvm, "hvm", true, "boot in HVM mode (--hvm=false for PV)")
	fl.StringVar(&f.kernelCmdline, "kernel-cmdline", "", "kernel command line for a PV guest")
	fl.StringArrayVar(&f.disks, "disk", nil, "DEVICE=PATH of a raw, VHD, VMDK or qcow2 image; repeat for more disks, the first boots")
	f.out.register(cmd, "archive generation: xapi or legacy (default: the VM directory's, else xapi)")
	addModeFlag(cmd)
	fl.BoolVar(&g.json, "json", false, "print the result as JSON")
	return cmd
}

func runPack(cmd *cobra.Command, g *globals, f *packFlags, args []string) error {
	output := args[len(args)-1]
	if err := refuseTerminal(output); err != nil {
		return err
	}
	outOpts, err := f.out.options(cmd, output)
	if err != nil {
		return err
	}
	opts := append(g.options(), outOpts...)
	if len(args) == 1 && f.out.format == "" {
		// A VM given by parts is packed for current hosts. The directory
		// form exists only for legacy archives, which must be asked for.
		if f.out.dirOutput(output) {
			return usagef("OUTPUT %s is a directory, and only legacy archives have a directory form: add --format legacy, or give a file name", output)
		}
		opts = append(opts, xva.WithFormat(xva.XAPI))
	}
	summary, err := summaryWriter(cmd, g, output)
	if err != nil {
		return err
	}
	var res *xva.PackResult
	if len(args) == 2 {
		if len(f.disks) > 0 {
			return usagef("give either a VM directory or --disk flags, not both")
		}
		res, err = xva.PackDir(cmd.Context(), args[0], output, opts...)
	} else {
		spec, serr := f.spec(output)
		if serr != nil {
			return serr
		}
		res, err = xva.Pack(cmd.Context(), spec, output, opts...)
	}
	if err != nil {
		return err
	}
	g.settle()
	return printPackResult(summary, g, res)
}

// summaryWriter is where a command that writes an archive prints its
// summary: stdout, unless the archive itself goes there.
func summaryWriter(cmd *cobra.Command, g *globals, output string) (io.Writer, error) {
	if output != "-" {
		if g.json {
			return cmd.OutOrStdout(), nil
		}
		return g.chatter(cmd.OutOrStdout()), nil
	}
	if g.json {
		return nil, usagef("--json prints to standard output, which OUTPUT '-' already uses")
	}
	return g.chatter(cmd.ErrOrStderr()), nil
}

func printPackResult(w io.Writer, g *globals, res *xva.PackResult) error {
	if g.json {
		return printJSON(packJSON(res))
	}
	unit := "chunk"
	if res.Generation == xva.XAPI {
		unit = "block"
	}
	for _, d := range res.Disks {
		fmt.Fprintf(w, "%s: %s in %s, %s stored\n", printable(d.Device),
			humanize.IBytes(uint64(d.Size)), plural(d.Members, unit), humanize.IBytes(uint64(d.Compressed)))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", printable(n))
	}
	if res.Output != "-" {
		fmt.Fprintf(w, "wrote %s (%s format)\n", printable(res.Output), res.Generation)
	}
	return nil
}

// spec builds the VM from flags.
func (f *packFlags) spec(output string) (*xva.VMSpec, error) {
	if len(f.disks) == 0 {
		return nil, usagef("no disks: give a VM directory or at least one --disk DEVICE=PATH")
	}
	mem, err := humanize.ParseBytes(f.memory)
	if err != nil {
		return nil, usagef("--memory %q: want bytes or a size with a unit, such as 512MiB or 2GiB", f.memory)
	}
	if mem == 0 {
		return nil, usagef("--memory must be more than 0, e.g. 512MiB")
	}
	if f.vcpus < 1 {
		return nil, usagef("--vcpus must be at least 1")
	}
	name := f.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(strings.TrimRight(output, "/")), ".xva")
	}
	spec := &xva.VMSpec{Name: name, Description: f.description, Memory: int64(mem), VCPUs: f.vcpus,
		HVM: f.hvm, KernelCmdline: f.kernelCmdline}
	for _, d := range f.disks {
		dev, path, ok := strings.Cut(d, "=")
		if !ok || dev == "" || path == "" {
			return nil, usagef("--disk %q: want DEVICE=PATH, e.g. sda=root.img", d)
		}
		if path == "-" {
			return nil, usagef("--disk %s: a disk is read from a file or device, not standard input (its size must be known before it is packed); save it to a file first", d)
		}
		spec.Disks = append(spec.Disks, xva.DiskSpec{Device: dev, Path: path})
	}
	return spec, nil
}

type packResultJSON struct {
	SchemaVersion int              `json:"schema_version"`
	Output        string           `json:"output"`
	Format        string           `json:"format"`
	Disks         []packedDiskJSON `json:"disks"`
	Notes         []string         `json:"notes"`
}

type packedDiskJSON struct {
	Device      string `json:"device"`
	SizeBytes   int64  `json:"size_bytes"`
	Members     int    `json:"members"`
	StoredBytes int64  `json:"stored_bytes"`
}

func packJSON(r *xva.PackResult) packResultJSON {
	out := packResultJSON{SchemaVersion: schemaVersion, Output: r.Output, Format: r.Generation.String(), Disks: []packedDiskJSON{},
		Notes: append([]string{}, r.Notes...)}
	for _, d := range r.Disks {
		out.Disks = append(out.Disks, packedDiskJSON{d.Device, d.Size, d.Members, d.Compressed})
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// readExts is the image names a VM directory may hold, "sda.raw, sda.vhd
// or sda.vmdk", from the library's format table.
func readExts() string {
	var names []string
	for _, f := range xva.DiskFormats() {
		if n := "sda" + f.Ext; f.Read && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
