package xva

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/xva-tools/xva/chunk"
)

// Option configures Pack, Unpack, Info and Convert.
type Option func(*options) error

type options struct {
	jobs       int
	level      int
	levelSet   bool // WithLevel was given: it also sets a whole-archive gzip's level
	progress   Progress
	dirForm    bool
	force      bool
	format     Generation // 0: the input's own, or legacy
	compress   string     // "", "gzip", "zstd"
	checksum   chunk.Checksum
	uuidSeed   string // derive the uuids of converted records from this
	onBadBlock func(*chunk.MemberError)
	onProblem  func(*CorruptError) error // see WithOnProblem
	discard    bool                      // see WithDiscard
	salvage    func(BadBlock)
	diskFormat string            // raw, vhd, vhd-fixed, qcow2
	tuning     imageTuning       // cluster size and compression of the images written
	targets    map[string]string // device → file, block device or lvm:PV:VG/LV
	createLV   string            // VG to create volumes in
	prezeroed  bool
	writer     io.Writer // Pack and Convert write the tar stream here
	// beforeCommit, when set, is called once everything is written and
	// before the output is committed: an error aborts it.
	beforeCommit func() error
	// storedBelow: the output is compressed as a whole, and Stored is told
	// the compressed bytes written, not the members' bytes.
	storedBelow bool
	log         *slog.Logger
}

// memberStored is what members written are reported to: Stored, unless
// the compressed bytes under them are counted instead.
func (o *options) memberStored() func(int64) {
	if o.storedBelow {
		return func(int64) {}
	}
	return o.progress.Stored
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{level: chunk.DefaultLevel, progress: nopProgress{}, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithLogger logs what the work does, step by step, at debug level: the
// archive's form and generation, each disk with its sizes and timing, the
// output committed. Nothing is logged by default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l != nil {
			o.log = l
		}
		return nil
	}
}

// WithJobs sets the number of workers. 0, the default, means one per core.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("%w: jobs must not be negative, got %d", ErrBadOptions, n)
		}
		o.jobs = n
		return nil
	}
}

// WithLevel sets the gzip compression level, 0–9 (default 6): of legacy
// chunks, or of an xapi archive compressed as a whole with gzip. An xapi
// archive written without gzip has nothing it applies to, so Pack and
// Convert refuse it there (ErrBadOptions).
func WithLevel(level int) Option {
	return func(o *options) error {
		if level < 0 || level > 9 {
			return fmt.Errorf("%w: compression level must be 0–9, got %d", ErrBadOptions, level)
		}
		o.level, o.levelSet = level, true
		return nil
	}
}

// WithProgress reports progress to p.
func WithProgress(p Progress) Option {
	return func(o *options) error {
		if p != nil {
			o.progress = &lockedProgress{p: p}
		}
		return nil
	}
}

// WithDirectory makes Pack write the directory form of the archive.
func WithDirectory(dir bool) Option {
	return func(o *options) error { o.dirForm = dir; return nil }
}

// WithOverwrite lets Pack replace an existing output file.
func WithOverwrite(force bool) Option {
	return func(o *options) error { o.force = force; return nil }
}

// WithFormat sets the generation Pack and Convert write. By default Pack
// writes a VM directory's own generation (legacy for a VM given by parts;
// the xva command passes XAPI for those).
func WithFormat(g Generation) Option {
	return func(o *options) error {
		if g != Legacy && g != XAPI {
			return fmt.Errorf("%w: unknown format %v", ErrBadOptions, g)
		}
		o.format = g
		return nil
	}
}

// WithCompression compresses an xapi archive as a whole: "gzip", "zstd",
// or "" / "none" for a plain tar (the default).
func WithCompression(kind string) Option {
	return func(o *options) error {
		switch kind {
		case "", "none":
			o.compress = ""
		case "gzip", "zstd":
			o.compress = kind
		default:
			return fmt.Errorf("%w: unknown compression %q (want none, gzip or zstd)", ErrBadOptions, kind)
		}
		return nil
	}
}

// WithChecksum sets the block hash an xapi archive is written with:
// chunk.XXHash (the default, what hosts write since 2019) or chunk.SHA1.
func WithChecksum(c chunk.Checksum) Option {
	return func(o *options) error { o.checksum = c; return nil }
}

// WithUUIDSeed makes the uuids of the records written when converting a
// legacy VM to the xapi generation derive from seed and the VM's
// description, so that the same seed and input give the same archive.
// Without it they are random: two different VMs must never share a uuid,
// and a VM's description alone cannot tell two VMs apart.
func WithUUIDSeed(seed string) Option {
	return func(o *options) error { o.uuidSeed = seed; return nil }
}

// ParseChecksum reads a block hash name: "xxhash" or "sha1".
func ParseChecksum(s string) (chunk.Checksum, error) { return chunk.ParseChecksum(s) }

// BadBlock is a block that failed its hash and was written as found.
type BadBlock struct {
	Member string // the checksum member that disagrees
	Offset int64  // disk offset of the block
	Err    error
}

// WithSalvage makes Unpack of an xapi archive write blocks whose hash does
// not match, as found, instead of stopping; fn is told of each one. Unpack
// then completes its output and returns a *CorruptError that counts them.
func WithSalvage(fn func(BadBlock)) Option {
	return func(o *options) error { o.salvage = fn; return nil }
}

// WithOnProblem makes a Reader tell fn of every problem it finds instead
// of stopping at the first: fn returns nil to go on past it (the data it
// concerns are left out), or an error to stop with. fn also hears what xva
// reads correctly but a host's importer would refuse or misread (kind
// KindImport, xapi's order rules, directory entries, a tar without its end
// blocks), which without it pass silently. A truncated or unreadable
// archive still stops the Reader: nothing after it can be read. fn is
// called from one goroutine at a time.
func WithOnProblem(fn func(*CorruptError) error) Option {
	return func(o *options) error { o.onProblem = fn; return nil }
}

// WithDiscard makes a Reader check every byte and hand none over, for a
// checker: Next returns ova.xml, then one entry per disk (Offset 0, Size
// 0) once all its data have been decoded and checked. Nothing waits for a
// consumer, and the chunks of a directory or a tar file are inflated up to
// WithJobs at once (each on fewer cores), as Unpack does: faster for
// chunks made by other tools, whose pieces cannot be inflated in parallel,
// in the same memory as Unpack.
func WithDiscard(b bool) Option {
	return func(o *options) error { o.discard = b; return nil }
}

// WithDiskFormat sets the image format Unpack writes, one of DiskFormats:
// "raw" (sparse files, the default), "vhd" (dynamic VHD) or "vhd-fixed".
func WithDiskFormat(f string) Option {
	return func(o *options) error {
		if _, ok := formatNamed(f); ok {
			o.diskFormat = f
			return nil
		}
		return fmt.Errorf("%w: unknown disk format %q (want %s)", ErrBadOptions, f, DiskFormatNames())
	}
}

// imageTuning is how images are written: the cluster size and compression
// asked for, compressed on the job count.
func (o *options) imageTuning() imageTuning {
	t := o.tuning
	t.jobs = o.jobs
	return t
}

// WithClusterSize sets the cluster size of the qcow2 images Unpack writes:
// a power of two from 512 bytes to 2 MiB (default 64 KiB). Other formats
// refuse it (ErrBadOptions).
func WithClusterSize(n int64) Option {
	return func(o *options) error { o.tuning.clusterSize = n; return nil }
}

// WithImageCompression makes the qcow2 images Unpack writes compressed:
// "zlib" or "zstd" (qemu's two compression types), each cluster compressed
// on its own, up to WithJobs at once. Other formats refuse it
// (ErrBadOptions).
func WithImageCompression(kind string) Option {
	return func(o *options) error { o.tuning.compress = kind; return nil }
}

// WithDiskTarget makes Unpack write disk device to target instead of a
// file in the output directory: a file path, a block device (/dev/sdb,
// /dev/VG/LV) or a logical volume on its PV, lvm:PV_PATH:VG/LV.
func WithDiskTarget(device, target string) Option {
	return func(o *options) error {
		if o.targets == nil {
			o.targets = map[string]string{}
		}
		if _, dup := o.targets[device]; dup {
			return fmt.Errorf("%w: two targets for disk %s", ErrBadOptions, device)
		}
		o.targets[device] = target
		return nil
	}
}

// WithCreateLV makes Unpack create a logical volume in VG vg for each disk
// without a target, by XenServer's SR conventions (LV-<vdi uuid> for a raw
// disk, VHD-<vdi uuid> for a VHD, sized as the SR driver sizes them), and
// write the disk there.
func WithCreateLV(vg string) Option {
	return func(o *options) error { o.createLV = vg; return nil }
}

// WithPrezeroed says block devices and volumes written to already read as
// zeros, so ranges the disk does not write are not zeroed.
func WithPrezeroed(b bool) Option {
	return func(o *options) error { o.prezeroed = b; return nil }
}
