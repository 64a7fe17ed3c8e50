// Command bench measures xva side by side with the tools people would
// otherwise use (pigz, gzip, tar, xxhsum, qemu-img) on the same generated
// disk in the same run, and prints wall time, throughput, output size and
// peak memory of both, and their ratios. Results also go to a JSON file.
//
//	go run ./bench [-size 4GiB] [-data 0.15] [-dir /var/tmp] [-out bench/results.json] [-only serve]
//
// It may import the root package, the image formats, disk, fixtures and
// internal/procmem.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/procmem"
)

// run is one measured command.
type run struct {
	Tool     string  `json:"tool"`
	Command  string  `json:"command"`
	Seconds  float64 `json:"seconds"`
	CPU      float64 `json:"cpu_seconds"` // user + system, children included
	MaxRSS   int64   `json:"max_rss_bytes"`
	OutBytes int64   `json:"output_bytes,omitempty"`
}

// Cores is how many cores the run used on average.
func (r run) Cores() float64 { return r.CPU / max(r.Seconds, 1e-9) }

// result compares xva with an alternative on one task.
type result struct {
	Task      string  `json:"task"`
	DiskBytes int64   `json:"disk_bytes"`
	Ours      run     `json:"xva"`
	Theirs    *run    `json:"baseline,omitempty"`
	Speedup   float64 `json:"speedup,omitempty"`    // baseline time / xva time
	SizeRatio float64 `json:"size_ratio,omitempty"` // xva output / baseline output
	Target    string  `json:"target,omitempty"`
	Met       *bool   `json:"met,omitempty"`
}

type bench struct {
	dir, xva string
	jobs     int
	results  []result
	// data are the regions of the benchmark disk that hold data, where
	// random reads are aimed.
	data []fixtures.Region
}

func main() {
	size := flag.String("size", "4GiB", "size of the benchmark disk")
	data := flag.Float64("data", 0.15, "fraction of the disk holding data")
	bigSize := flag.String("big", "32GiB", "size of the sparse disk for the memory check")
	dir := flag.String("dir", "", "work directory (default: a new one under $TMPDIR); it needs about twice the data size free")
	out := flag.String("out", "bench/results.json", "where to write the JSON results")
	keep := flag.Bool("keep", false, "keep the work directory")
	only := flag.String("only", "", "run only these steps (comma-separated: "+strings.Join(stepNames, ", ")+"); the archives they read are packed first, unmeasured")
	flag.Parse()
	if err := mainErr(*size, *bigSize, *data, *dir, *out, *keep, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// stepNames are the steps of a run, in order, for -only.
var stepNames = []string{"legacy", "xapi", "verify", "images", "unpack-images", "ova", "serve", "foreign-index", "s3", "memory"}

func mainErr(size, bigSize string, data float64, dir, out string, keep bool, only string) error {
	var chosen map[string]bool
	if only != "" {
		chosen = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			if !slices.Contains(stepNames, s) {
				return fmt.Errorf("-only: no step %q (steps: %s)", s, strings.Join(stepNames, ", "))
			}
			chosen[s] = true
		}
	}
	n, err := humanize.ParseBytes(size)
	if err != nil {
		return err
	}
	big, err := humanize.ParseBytes(bigSize)
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "xva-bench-"); err != nil {
			return err
		}
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	b := &bench{dir: dir, jobs: runtime.NumCPU(), xva: filepath.Join(dir, "xva")}
	if err := b.setup(); err != nil {
		return err
	}
	fmt.Printf("machine: %s, %d cores; disk %s with %.0f%% data\n\n", cpuModel(), b.jobs, humanize.IBytes(n), data*100)
	disk := fixtures.Disk{Size: int64(n), Seed: 42, Data: data, MaxRegion: 16 << 20}
	for _, r := range disk.Layout() {
		if r.Kind != fixtures.Hole && r.Kind != fixtures.Zeros {
			b.data = append(b.data, r)
		}
	}
	if _, err := disk.Write(b.path("disk.raw")); err != nil {
		return err
	}
	steps := []func(int64) error{b.legacy, b.xapi, b.verify, b.images, b.unpackImages, b.ova, b.serve, b.foreignIndex,
		b.objectStore, func(int64) error { return b.memory(int64(big)) }}
	if chosen != nil {
		// The legacy and xapi steps leave legacy.xva and x.xva for the
		// later ones: without them, pack those archives unmeasured.
		if err := b.packArchives(!chosen["legacy"], !chosen["xapi"]); err != nil {
			return err
		}
	}
	for i, step := range steps {
		if chosen != nil && !chosen[stepNames[i]] {
			continue
		}
		if err := step(int64(n)); err != nil {
			return err
		}
	}
	b.print()
	return b.save(out)
}

// packArchives packs the archives the legacy and xapi steps would have
// left, for a run of some steps only.
func (b *bench) packArchives(legacy, xapi bool) error {
	for _, c := range []struct {
		want                  bool
		format, disk, archive string
	}{{legacy, "legacy", "sda", "legacy.xva"}, {xapi, "xapi", "xvda", "x.xva"}} {
		if !c.want {
			continue
		}
		cmd := exec.Command(b.xva, "pack", "-q", "--force", "--format", c.format, "--disk", c.disk+"=disk.raw", c.archive)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("packing %s: %v\n%s", c.archive, err, out)
		}
	}
	return nil
}

func (b *bench) path(name string) string { return filepath.Join(b.dir, name) }

// objectStore packs to and unpacks from a local S3 server (versitygw,
// $XVA_VERSITYGW, which make bench builds) against the same to and from a
// local file, both generations: the ratio is the store's cost, and peak
// RSS must stay within the parts in flight and the one filling
// ((--jobs+1) × 64 MiB) over the local run's.
func (b *bench) objectStore(n int64) error {
	bin := os.Getenv("XVA_VERSITYGW")
	if bin == "" {
		fmt.Println("s3: XVA_VERSITYGW not set (make bench builds versitygw); the S3 step is skipped")
		return nil
	}
	root := b.path("s3root")
	if err := os.MkdirAll(filepath.Join(root, "bench"), 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(root)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	srv := exec.Command(bin, "--access", "benchaccess", "--secret", "benchsecret", "--port", addr, "--quiet", "posix", root)
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "benchaccess", "AWS_SECRET_ACCESS_KEY": "benchsecret",
		"AWS_ENDPOINT_URL": "http://" + addr, "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		os.Setenv(k, v)
	}
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// In flight and the one filling, and a legacy chunk's 16 MiB spool.
	parts := int64(b.jobs+1)*64<<20 + 16<<20
	for _, g := range []string{"xapi", "legacy"} {
		ours, err := b.measure("xva → S3", fmt.Sprintf("%s pack --force --name bench --uuid-seed bench --format %s --disk xvda=disk.raw s3://bench/%s.xva && sync s3root/bench/%s.xva", b.xva, g, g, g))
		if err != nil {
			return err
		}
		theirs, err := b.measure("xva → file", fmt.Sprintf("%s pack --force --name bench --uuid-seed bench --format %s --disk xvda=disk.raw s3-local.xva && sync s3-local.xva", b.xva, g))
		if err != nil {
			return err
		}
		if err := b.same("s3-local.xva", filepath.Join("s3root", "bench", g+".xva")); err != nil {
			return err
		}
		b.compare(g+" pack to a local S3 server (versitygw) vs to a file", n, ours, theirs, "≥ 0.8× the file's speed, RSS ≤ file's + (jobs+1) × part size + 16 MiB",
			func(r result) bool { return r.Speedup >= 0.8 && ours.MaxRSS <= theirs.MaxRSS+parts })
		ours, err = b.measure("S3 → xva", fmt.Sprintf("rm -rf s3-out && %s unpack s3://bench/%s.xva s3-out && sync s3-out/xvda.raw", b.xva, g))
		if err != nil {
			return err
		}
		theirs, err = b.measure("file → xva", fmt.Sprintf("rm -rf s3-out2 && %s unpack s3-local.xva s3-out2 && sync s3-out2/xvda.raw", b.xva))
		if err != nil {
			return err
		}
		if err := b.same("s3-out/xvda.raw", "s3-out2/xvda.raw"); err != nil {
			return err
		}
		b.compare(g+" unpack from a local S3 server vs from a file", n, ours, theirs, "≥ 0.8× the file's speed",
			func(r result) bool { return r.Speedup >= 0.8 })
		if g == "xapi" {
			if err := b.objectStoreVsCurl(n, addr); err != nil {
				return err
			}
		}
		for _, f := range []string{"s3-out", "s3-out2", "s3-local.xva"} {
			os.RemoveAll(b.path(f))
		}
	}
	return nil
}

// objectStoreVsCurl holds xva's streaming to and from the store against
// what a user does without it: pack to a local file, then upload it with
// curl (SigV4, one PUT); download it with curl, then unpack the file.
// s3-local.xva is the xapi archive the caller packed.
func (b *bench) objectStoreVsCurl(n int64, addr string) error {
	curl := `curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user benchaccess:benchsecret -H "x-amz-content-sha256: UNSIGNED-PAYLOAD"`
	ours, err := b.measure("xva → S3", fmt.Sprintf("%s pack --force --name bench --uuid-seed bench --disk xvda=disk.raw s3://bench/c.xva && sync s3root/bench/c.xva", b.xva))
	if err != nil {
		return err
	}
	theirs, err := b.measure("xva → file, curl -T", fmt.Sprintf("%s pack --force --name bench --uuid-seed bench --disk xvda=disk.raw c-local.xva && %s -T c-local.xva http://%s/bench/curl.xva && sync s3root/bench/curl.xva",
		b.xva, curl, addr))
	if err != nil {
		return err
	}
	if err := b.same("s3root/bench/c.xva", "s3root/bench/curl.xva"); err != nil {
		return err
	}
	b.compare("xapi pack to S3 vs pack to a file, then curl upload", n, ours, theirs, "≥ 1× (nothing staged)",
		func(r result) bool { return r.Speedup >= 1 })
	// The store's own floor: the finished archive's bytes uploaded, with
	// no packing at all. Packing to the store costs nothing over it when
	// xva's whole pack takes about as long (runs vary by 5% either way).
	upload, err := b.measure("curl -T (upload alone)", fmt.Sprintf("%s -T c-local.xva http://%s/bench/curl.xva && sync s3root/bench/curl.xva", curl, addr))
	if err != nil {
		return err
	}
	b.compare("xapi pack to S3 vs curl uploading the packed archive alone", n, ours, upload, "≥ 0.9× (packing hidden behind the upload, the floor)",
		func(r result) bool { return r.Speedup >= 0.9 })
	ours, err = b.measure("S3 → xva", fmt.Sprintf("rm -rf c-out && %s unpack s3://bench/c.xva c-out && sync c-out/xvda.raw", b.xva))
	if err != nil {
		return err
	}
	theirs, err = b.measure("curl, file → xva", fmt.Sprintf("rm -rf c-out2 c-got.xva && %s -o c-got.xva http://%s/bench/c.xva && %s unpack c-got.xva c-out2 && sync c-out2/xvda.raw",
		curl, addr, b.xva))
	if err != nil {
		return err
	}
	if err := b.same("c-out/xvda.raw", "c-out2/xvda.raw"); err != nil {
		return err
	}
	b.compare("xapi unpack from S3 vs curl download, then unpack", n, ours, theirs, "≥ 1× (nothing staged)",
		func(r result) bool { return r.Speedup >= 1 })
	for _, f := range []string{"c-out", "c-out2", "c-got.xva", "c-local.xva"} {
		os.RemoveAll(b.path(f))
	}
	return nil
}

// setup builds xva and checks the baselines are installed.
func (b *bench) setup() error {
	if out, err := exec.Command("go", "build", "-o", b.xva, "./cmd/xva").CombinedOutput(); err != nil {
		return fmt.Errorf("building xva: %v\n%s", err, out)
	}
	for _, tool := range []string{"pigz", "split", "tar", "xxhsum", "cp", "qemu-img", "nbdcopy", "zstd", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install pigz xxhash coreutils tar qemu-utils libnbd-bin zstd)", tool)
		}
	}
	return nil
}

// measure runs a shell command in the work directory and returns its cost.
// xva flushes every output to stable storage before it reports success, so
// baselines end with sync on their outputs: the same work, durably done.
// CPU time comes from wait4's rusage, which covers the shell's children
// too; peak RSS (of the largest process) from procmem, since the rusage
// figure is floored at this process's own size.
//
// A run under five seconds is repeated five times and the median kept:
// such runs are dominated by page-cache writeback, whose cost varies from
// run to run more than the difference being measured. Scripts therefore
// clear their own outputs first.
func (b *bench) measure(tool, script string) (run, error) {
	first, err := b.once(tool, script)
	if err != nil || first.Seconds >= 5 {
		return first, err
	}
	runs := []run{first}
	for range 4 {
		r, err := b.once(tool, script)
		if err != nil {
			return r, err
		}
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(x, y run) int { return cmp.Compare(x.Seconds, y.Seconds) })
	return runs[len(runs)/2], nil
}

// measurePair measures two commands as measure does, but in alternation,
// so that what else the machine is doing weighs on both alike.
func (b *bench) measurePair(toolA, scriptA, toolB, scriptB string) (run, run, error) {
	var as, bs []run
	for i := range 5 {
		a, err := b.once(toolA, scriptA)
		if err != nil {
			return a, run{}, err
		}
		r, err := b.once(toolB, scriptB)
		if err != nil {
			return a, r, err
		}
		as, bs = append(as, a), append(bs, r)
		if i == 0 && a.Seconds >= 5 && r.Seconds >= 5 {
			break
		}
	}
	median := func(runs []run) run {
		slices.SortFunc(runs, func(x, y run) int { return cmp.Compare(x.Seconds, y.Seconds) })
		return runs[len(runs)/2]
	}
	return median(as), median(bs), nil
}

func (b *bench) once(tool, script string) (run, error) {
	// Flush what earlier runs left dirty first: its writeback otherwise
	// competes for the CPU with whichever run comes next, and made a 1 s
	// verify take 2.4 s in one run of the bench and not in the next.
	syncAll()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = b.dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	rss, err := procmem.Run(cmd)
	r := run{Tool: tool, Command: script, Seconds: time.Since(start).Seconds(), MaxRSS: rss}
	if err != nil {
		return r, fmt.Errorf("%s: %v\n%s", script, err, stderr.String())
	}
	r.CPU = cpuSeconds(cmd.ProcessState)
	return r, nil
}

// size is the bytes a path occupies as a file or a directory tree.
func (b *bench) size(rel string) int64 {
	var n int64
	filepath.Walk(b.path(rel), func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// same checks two files hold the same bytes, so a comparison is of equal work.
func (b *bench) same(x, y string) error {
	if out, err := exec.Command("cmp", b.path(x), b.path(y)).CombinedOutput(); err != nil {
		return fmt.Errorf("%s and %s differ: %s", x, y, out)
	}
	return nil
}

func (b *bench) compare(task string, disk int64, ours, theirs run, target string, met func(result) bool) {
	r := result{Task: task, DiskBytes: disk, Ours: ours, Theirs: &theirs, Target: target}
	r.Speedup = theirs.Seconds / max(ours.Seconds, 1e-9)
	if ours.OutBytes > 0 && theirs.OutBytes > 0 {
		r.SizeRatio = float64(ours.OutBytes) / float64(theirs.OutBytes)
	}
	if met != nil {
		ok := met(r)
		r.Met = &ok
	}
	b.results = append(b.results, r)
}

func (b *bench) alone(task string, disk int64, ours run, target string, met func(result) bool) {
	r := result{Task: task, DiskBytes: disk, Ours: ours, Target: target}
	if met != nil {
		ok := met(r)
		r.Met = &ok
	}
	b.results = append(b.results, r)
}

func (b *bench) legacy(n int64) error {
	ours, err := b.measure("xva", fmt.Sprintf("%s pack --force --format legacy --disk sda=disk.raw legacy.xva", b.xva))
	if err != nil {
		return err
	}
	ours.OutBytes = b.size("legacy.xva")
	// The same chunking with the standard tools, compressed on all cores,
	// no temporary files.
	theirs, err := b.measure("split+pigz", fmt.Sprintf(
		"rm -rf pigz && mkdir -p pigz && split -b 1000000000 -d -a 9 --filter='pigz -6 -p %d > $FILE.gz' disk.raw pigz/chunk- && sync pigz/*", b.jobs))
	if err != nil {
		return err
	}
	theirs.OutBytes = b.size("pigz")
	b.compare("legacy pack", n, ours, theirs, "≥ 2× faster, ≤ 1.05× size",
		func(r result) bool { return r.Speedup >= 2 && r.SizeRatio <= 1.05 })

	ours, err = b.measure("xva", fmt.Sprintf("rm -rf legacy-out && %s unpack legacy.xva legacy-out", b.xva))
	if err != nil {
		return err
	}
	theirs, err = b.measure("pigz+cp", "rm -f pigz.raw && pigz -dc pigz/chunk-* | cp --sparse=always /dev/stdin pigz.raw && sync pigz.raw")
	if err != nil {
		return err
	}
	if err := b.same("legacy-out/sda.raw", "pigz.raw"); err != nil {
		return err
	}
	b.compare("legacy unpack", n, ours, theirs, "≥ 2× faster", func(r result) bool { return r.Speedup >= 2 })
	os.RemoveAll(b.path("pigz"))
	os.Remove(b.path("pigz.raw"))
	os.RemoveAll(b.path("legacy-out"))
	return nil
}

func (b *bench) xapi(n int64) error {
	ours, err := b.measure("xva", fmt.Sprintf("%s pack --force --format xapi --disk xvda=disk.raw x.xva", b.xva))
	if err != nil {
		return err
	}
	ours.OutBytes = b.size("x.xva")
	// The same archive by hand: 1 MiB blocks, an uppercase XXH64 member each,
	// a tar in name order (no zero-block skipping: tar and split cannot).
	pack := `rm -rf tx tx.tar && mkdir -p tx/Ref:1 && cd tx && cp ../ova.xml . 2>/dev/null; ` +
		`split -b 1048576 -d -a 8 ../disk.raw Ref:1/ && ` +
		`xxhsum -H1 Ref:1/* | awk '{ printf "%s", toupper($1) > ($2 ".xxhash") }' && ` +
		`tar --sort=name --owner=0 --group=0 --mode=0400 -cf ../tx.tar Ref:1 && cd .. && rm -rf tx && sync tx.tar`
	theirs, err := b.measure("split+xxhsum+tar", pack)
	if err != nil {
		return err
	}
	theirs.OutBytes = b.size("tx.tar")
	b.compare("xapi pack", n, ours, theirs, "≥ 1.5× faster", func(r result) bool { return r.Speedup >= 1.5 })

	ours, err = b.measure("xva", fmt.Sprintf("rm -rf x-out && %s unpack x.xva x-out", b.xva))
	if err != nil {
		return err
	}
	unpack := `rm -rf tu tx.raw && mkdir -p tu && tar -xf tx.tar -C tu && cd tu && ` +
		`for f in Ref:1/*.xxhash; do printf '%s  %s\n' "$(tr A-F a-f < $f)" "${f%.xxhash}"; done > sums && ` +
		`xxhsum -H1 -c --quiet sums && ls Ref:1/* | grep -v xxhash | xargs cat | cp --sparse=always /dev/stdin ../tx.raw && cd .. && rm -rf tu && sync tx.raw`
	theirs, err = b.measure("tar+xxhsum+cp", unpack)
	if err != nil {
		return err
	}
	if err := b.same("x-out/xvda.raw", "tx.raw"); err != nil {
		return err
	}
	b.compare("xapi unpack", n, ours, theirs, "≥ 1.5× faster", func(r result) bool { return r.Speedup >= 1.5 })
	os.Remove(b.path("tx.tar"))
	os.Remove(b.path("tx.raw"))
	os.RemoveAll(b.path("x-out"))
	return nil
}

func (b *bench) verify(n int64) error {
	// Inflating chunks is CPU-bound: it must use every core. Hashing blocks
	// with XXH64 is not (it runs at memory speed): it must keep up with
	// reading the archive.
	r, err := b.measure("xva", fmt.Sprintf("%s verify legacy.xva", b.xva))
	if err != nil {
		return err
	}
	b.alone("verify legacy", n, r, fmt.Sprintf("uses all %d cores", b.jobs),
		func(r result) bool { return r.Ours.Cores() >= 0.8*float64(b.jobs) })
	read, err := b.measure("cat", "cat x.xva > /dev/null")
	if err != nil {
		return err
	}
	r, err = b.measure("xva", fmt.Sprintf("%s verify x.xva", b.xva))
	if err != nil {
		return err
	}
	b.compare("verify xapi", n, r, read, "as fast as reading it (cat)",
		func(r result) bool { return r.Speedup >= 0.8 })

	// One worker budget: verify reads through the reader unpack uses, so
	// at the same --jobs it holds no more memory (it used to hold a pool
	// per chunk check, jobs² buffers).
	const jobs = 16
	v, err := b.measure("xva", fmt.Sprintf("%s verify --jobs %d legacy.xva", b.xva, jobs))
	if err != nil {
		return err
	}
	u, err := b.measure("xva unpack", fmt.Sprintf("rm -rf legacy-out && %s unpack --jobs %d legacy.xva legacy-out && rm -rf legacy-out", b.xva, jobs))
	if err != nil {
		return err
	}
	b.compare(fmt.Sprintf("verify legacy, --jobs %d, vs unpack", jobs), n, v, u, "peak RSS ≤ unpack's",
		func(r result) bool { return r.Ours.MaxRSS <= r.Theirs.MaxRSS })
	return nil
}

// imageFormats are the image formats measured against qemu-img: xva's
// --disk-format and flags, qemu-img's -O and options, the file extension,
// and the target.
var imageFormats = []struct {
	xva, xvaFlags, qemu, qemuFlags, ext, target string
	faster                                      float64 // the speedup the target asks for
}{
	{"vhd", "", "vpc", "-o subformat=dynamic,force_size=on", ".vhd", "≥ qemu-img", 1},
	{"vmdk", "", "vmdk", "-o subformat=monolithicSparse", ".vmdk", "≥ qemu-img", 1},
	{"vmdk-stream", "", "vmdk", "-o subformat=streamOptimized", ".s.vmdk", "≥ 2× qemu-img (compressing)", 2},
	{"qcow2", "", "qcow2", "-o compat=1.1", ".qcow2", "≥ qemu-img", 1},
	{"qcow2", "--compress zlib", "qcow2", "-c -o compat=1.1", ".z.qcow2", "≥ 2× qemu-img (compressing)", 2},
	{"vhdx", "", "vhdx", "-o subformat=dynamic", ".vhdx", "≥ qemu-img", 1},
}

// unpackImages unpacks the xapi archive straight into each image format,
// against unpacking it to raw and then running qemu-img convert, the way
// a user gets such an image without xva's formats.
func (b *bench) unpackImages(n int64) error {
	for _, f := range imageFormats {
		if f.xva == "vhd" || f.xvaFlags != "" {
			continue
		}
		ours, err := b.measure("xva", fmt.Sprintf("rm -rf u-out && %s unpack -q --disk-format %s x.xva u-out", b.xva, f.xva))
		if err != nil {
			return err
		}
		theirs, err := b.measure("xva+qemu-img", fmt.Sprintf("rm -rf r-out q%[1]s && %[4]s unpack -q x.xva r-out && qemu-img convert -f raw -O %[2]s %[3]s r-out/xvda.raw q%[1]s && sync q%[1]s", f.ext, f.qemu, f.qemuFlags, b.xva))
		if err != nil {
			return err
		}
		b.compare("xapi archive → "+f.xva, n, ours, theirs, "≥ 2× unpack + qemu-img", func(r result) bool { return r.Speedup >= 2 })
		os.RemoveAll(b.path("u-out"))
		os.RemoveAll(b.path("r-out"))
		os.Remove(b.path("q" + f.ext))
	}
	return nil
}

// images converts the raw disk into each image format and back with
// `xva convert`, against qemu-img convert on the same data, and checks both
// give the same disk.
func (b *bench) images(n int64) error {
	for _, f := range imageFormats {
		name := strings.TrimSpace(f.xva + " " + f.xvaFlags)
		ours, err := b.measure("xva", fmt.Sprintf("rm -f d%[1]s && %[3]s convert -q --disk-format %[2]s %[4]s disk.raw d%[1]s", f.ext, f.xva, b.xva, f.xvaFlags))
		if err != nil {
			return err
		}
		ours.OutBytes = b.size("d" + f.ext)
		theirs, err := b.measure("qemu-img", fmt.Sprintf("rm -f q%[1]s && qemu-img convert -f raw -O %[2]s %[3]s disk.raw q%[1]s && sync q%[1]s", f.ext, f.qemu, f.qemuFlags))
		if err != nil {
			return err
		}
		theirs.OutBytes = b.size("q" + f.ext)
		b.compare("raw → "+name, n, ours, theirs, f.target, func(r result) bool { return r.Speedup >= f.faster })
		if ours, err = b.measure("xva", fmt.Sprintf("rm -f back.raw && %s convert -q d%s back.raw", b.xva, f.ext)); err != nil {
			return err
		}
		if theirs, err = b.measure("qemu-img", fmt.Sprintf("rm -f q.raw && qemu-img convert -f %s -O raw q%s q.raw && sync q.raw", f.qemu, f.ext)); err != nil {
			return err
		}
		for _, out := range []string{"back.raw", "q.raw"} {
			if err := b.same("disk.raw", out); err != nil {
				return err
			}
		}
		b.compare(name+" → raw", n, ours, theirs, "≥ qemu-img", func(r result) bool { return r.Speedup >= 1 })
		for _, out := range []string{"d" + f.ext, "q" + f.ext, "back.raw", "q.raw"} {
			os.Remove(b.path(out))
		}
	}
	return nil
}

// ova writes the xapi archive as an OVA (a streamOptimized VMDK and a
// SHA-256 manifest) against the manual route: unpack, qemu-img convert,
// sha256sum for the manifest, tar; then reads an OVA back into an archive
// against tar -x, qemu-img convert to raw and xva pack. Both OVAs' disks
// must read as the same disk.
func (b *bench) ova(n int64) error {
	ours, err := b.measure("xva", fmt.Sprintf("rm -f x.ova && %s convert -q x.xva x.ova", b.xva))
	if err != nil {
		return err
	}
	ours.OutBytes = b.size("x.ova")
	theirs, err := b.measure("unpack+qemu-img+sha256sum+tar", fmt.Sprintf("rm -rf m-out m.ova && mkdir m-out && "+
		"%[1]s unpack -q x.xva m-raw && qemu-img convert -f raw -O vmdk -o subformat=streamOptimized m-raw/xvda.raw m-out/x-xvda.vmdk && "+
		"rm -rf m-raw && printf '<Envelope/>' > m-out/x.ovf && "+
		"(cd m-out && sha256sum x.ovf x-xvda.vmdk | sed -E 's/^([0-9a-f]+)  (.*)$/SHA256(\\2)= \\1/' > x.mf && tar -cf ../m.ova x.ovf x-xvda.vmdk x.mf) && sync m.ova", b.xva))
	if err != nil {
		return err
	}
	theirs.OutBytes = b.size("m.ova")
	b.compare("xapi archive → OVA", n, ours, theirs, "≥ 2× the manual route", func(r result) bool { return r.Speedup >= 2 })
	os.RemoveAll(b.path("m-out"))
	// Both packages hold the same disk.
	if out, err := exec.Command("sh", "-c", "cd "+b.dir+" && rm -rf t && mkdir t && tar -C t -xf x.ova && tar -C t -xf m.ova && qemu-img compare -q t/x-xvda.vmdk t/x-xvda.vmdk && "+
		"qemu-img compare -q -f vmdk -F raw t/x-xvda.vmdk disk.raw").CombinedOutput(); err != nil {
		return fmt.Errorf("the OVA's disk differs from the source: %v\n%s", err, out)
	}
	os.RemoveAll(b.path("t"))
	ours, err = b.measure("xva", fmt.Sprintf("rm -f o.xva && %s convert -q x.ova o.xva", b.xva))
	if err != nil {
		return err
	}
	theirs, err = b.measure("tar+qemu-img+xva", fmt.Sprintf("rm -rf o-out p.xva && mkdir o-out && tar -C o-out -xf x.ova && "+
		"qemu-img convert -f vmdk -O raw o-out/x-xvda.vmdk o-out/xvda.raw && %s pack -q --disk xvda=o-out/xvda.raw p.xva && sync p.xva", b.xva))
	if err != nil {
		return err
	}
	b.compare("OVA → xapi archive", n, ours, theirs, "≥ tar + qemu-img + pack", func(r result) bool { return r.Speedup >= 1 })
	for _, f := range []string{"x.ova", "m.ova", "o.xva", "p.xva"} {
		os.Remove(b.path(f))
	}
	os.RemoveAll(b.path("o-out"))
	return nil
}

// serve reads disks inside archives at random through xva serve: 2000
// random 4 KiB reads over NBD (median and 99th percentile latency, after a
// first read of each chunk or block region has built what reading needs),
// and nbdcopy of the whole disk against xva unpack of the same archive.
func (b *bench) serve(n int64) error {
	// The compressed kinds: gzip (read through a restart-point index built
	// on the server's start), zstd (xva writes it seekable), one zstd
	// stream as the zstd program writes it from a pipe, as a host's export
	// is (a restart-point index built on the server's start), and chunks
	// pigz made (an index per chunk). Random reads only.
	prep := fmt.Sprintf("%[1]s convert -q x.xva x.xva.gz && %[1]s convert -q x.xva x.xva.zst && zstd -q -3 < x.xva > xs.xva.zst && "+
		"rm -rf pz && mkdir pz && tar -C pz -xf legacy.xva && for c in pz/sda/chunk*; do gzip -dc $c | pigz -6 > $c.new && mv $c.new $c; done", b.xva)
	if out, err := exec.Command("sh", "-c", "cd "+b.dir+" && "+prep).CombinedOutput(); err != nil {
		return fmt.Errorf("making compressed archives: %v\n%s", err, out)
	}
	defer func() {
		for _, f := range []string{"x.xva.gz", "x.xva.zst", "xs.xva.zst", "pz", "cache", "zcache"} {
			os.RemoveAll(b.path(f))
		}
	}()
	// The zstd stream's index, built by the first read at random, against
	// decoding the stream with zstd -dc; the index is the cache file.
	zcache := b.path("zcache")
	ours, err := b.measure("xva", fmt.Sprintf("rm -rf %[1]s && XDG_CACHE_HOME=%[1]s %[2]s cat -q xs.xva.zst xvda --length 4096 > /dev/null", zcache, b.xva))
	if err != nil {
		return err
	}
	ours.OutBytes = b.size("zcache")
	theirs, err := b.measure("zstd -dc", "zstd -dc xs.xva.zst > /dev/null")
	if err != nil {
		return err
	}
	theirs.OutBytes = b.size("xs.xva.zst")
	b.compare("index of a zstd stream (zstd CLI, -3 from a pipe), first read at random", n, ours, theirs, "index < 3% of the archive",
		func(r result) bool { return r.SizeRatio < 0.03 })
	for _, c := range []struct {
		archive, device, kind string
		copy                  bool // also nbdcopy against unpack
	}{
		{"x.xva", "xvda", "xapi", true},
		{"legacy.xva", "sda", "legacy (xva's chunks)", true},
		{"x.xva.gz", "xvda", "xapi, gzip as a whole", false},
		{"x.xva.zst", "xvda", "xapi, zstd as a whole (seekable)", false},
		{"xs.xva.zst", "xvda", "xapi, zstd stream (zstd CLI)", false},
		{"pz", "sda", "legacy (pigz's chunks)", false},
	} {
		sock := b.path(c.archive + ".sock")
		srv := exec.Command(b.xva, "serve", "-q", "--listen", "unix:"+sock, c.archive)
		srv.Env = append(os.Environ(), "XDG_CACHE_HOME="+b.path("cache"))
		srv.Dir = b.dir
		if err := srv.Start(); err != nil {
			return err
		}
		stop := func() { srv.Process.Signal(os.Interrupt); srv.Wait() }
		if err := waitSocket(sock); err != nil {
			stop()
			return err
		}
		if err := b.randomReads(sock, c.device, c.kind, n, c.copy); err != nil {
			stop()
			return err
		}
		if !c.copy {
			stop()
			continue
		}
		uri := fmt.Sprintf("'nbd+unix:///%s?socket=%s'", c.device, sock)
		// Interleaved: a sub-second copy measured a minute after the
		// unpack it is held against sees another load on a shared machine.
		ours, theirs, err := b.measurePair(
			"nbdcopy", fmt.Sprintf("rm -f n.raw && nbdcopy %s n.raw && sync n.raw", uri),
			"xva unpack", fmt.Sprintf("rm -rf u-out && %s unpack -q %s u-out", b.xva, c.archive))
		if err == nil {
			b.compare("nbdcopy from xva serve, "+c.kind, n, ours, theirs, "≥ 0.8× unpack's throughput", func(r result) bool { return r.Speedup >= 0.8 })
		}
		stop()
		if err != nil {
			return err
		}
		if err := b.same("n.raw", "disk.raw"); err != nil {
			return err
		}
		os.Remove(b.path("n.raw"))
		os.RemoveAll(b.path("u-out"))
	}
	return nil
}

// randomReads times random 4 KiB reads of device through the server on
// sock, after one read per 1e9 bytes (each legacy chunk is checked whole on
// its first read).
func (b *bench) randomReads(sock, device, kind string, n int64, target bool) error {
	c, err := dialNBD(sock, device)
	if err != nil {
		return err
	}
	defer c.c.Close()
	buf := make([]byte, 4096)
	start := time.Now()
	for off := int64(0); off < c.size; off += 1e9 {
		if _, err := c.read(buf, off/4096*4096); err != nil {
			return err
		}
	}
	warm := time.Since(start)
	median, p99, err := c.randomReads(2000, b.data)
	if err != nil {
		return err
	}
	task := fmt.Sprintf("random 4 KiB reads via NBD, %s: median %.2f ms, p99 %.2f ms (first reads %.1f s)", kind,
		median.Seconds()*1000, p99.Seconds()*1000, warm.Seconds())
	r := run{Tool: "xva serve", Command: "2000 random 4 KiB reads, median latency", Seconds: median.Seconds()}
	if !target {
		b.alone(task, n, r, "reported", nil)
		return nil
	}
	b.alone(task, n, r, "median < 5 ms", func(r result) bool { return r.Ours.Seconds < 0.005 })
	return nil
}

// foreignIndex builds the restart-point index of a legacy archive whose
// chunks another tool made (pigz), on the first read at random, against
// inflating the same chunks with gzip -dc; the index must be built at
// inflate speed and take under 1% of the archive.
func (b *bench) foreignIndex(n int64) error {
	prep := "rm -rf fdir && mkdir fdir && tar -C fdir -xf legacy.xva && " +
		"for c in fdir/sda/chunk*; do gzip -dc $c | pigz -6 > $c.new && mv $c.new $c; done"
	if out, err := exec.Command("sh", "-c", "cd "+b.dir+" && "+prep).CombinedOutput(); err != nil {
		return fmt.Errorf("making a pigz chunk set: %v\n%s", err, out)
	}
	cache := b.path("cache")
	ours, err := b.measure("xva", fmt.Sprintf("rm -rf %s && XDG_CACHE_HOME=%s %s cat -q fdir sda --length 4096 > /dev/null", cache, cache, b.xva))
	if err != nil {
		return err
	}
	ours.OutBytes = b.size("cache")
	theirs, err := b.measure("gzip -dc", "cat fdir/sda/chunk* | gzip -dc > /dev/null")
	if err != nil {
		return err
	}
	theirs.OutBytes = b.size("fdir")
	b.compare("index of a pigz chunk set (first read at random)", n, ours, theirs, "≥ 0.8× gzip -dc, index < 1% of the archive",
		func(r result) bool { return r.Speedup >= 0.8 && r.SizeRatio < 0.01 })
	os.RemoveAll(b.path("fdir"))
	os.RemoveAll(cache)
	return nil
}

// waitSocket waits for a server to listen on the Unix socket path.
func waitSocket(path string) error {
	for range 3000 { // a server builds its gzip and zstd indexes first
		if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no server on %s after 150 s", path)
}

// memory packs and unpacks a much larger, mostly empty disk: peak memory
// must not grow with the disk.
func (b *bench) memory(big int64) error {
	d := fixtures.Disk{Size: big, Seed: 43, Data: 0.002, MaxRegion: 16 << 20}
	if _, err := d.Write(b.path("big.raw")); err != nil {
		return err
	}
	defer os.Remove(b.path("big.raw"))
	for _, format := range []string{"legacy", "xapi"} {
		p, err := b.measure("xva", fmt.Sprintf("%s pack --format %s --disk xvda=big.raw big.xva --force", b.xva, format))
		if err != nil {
			return err
		}
		b.alone(format+" pack, "+humanize.IBytes(uint64(big))+" sparse", big, p, "peak RSS ≤ 256 MiB",
			func(r result) bool { return r.Ours.MaxRSS <= 256<<20 })
		u, err := b.measure("xva", fmt.Sprintf("rm -rf big-out && %s unpack big.xva big-out", b.xva))
		if err != nil {
			return err
		}
		b.alone(format+" unpack, "+humanize.IBytes(uint64(big))+" sparse", big, u, "peak RSS ≤ 256 MiB",
			func(r result) bool { return r.Ours.MaxRSS <= 256<<20 })
	}
	o, err := b.measure("xva", fmt.Sprintf("rm -f big.ova && %s convert big.xva big.ova", b.xva))
	if err != nil {
		return err
	}
	b.alone("xapi → OVA, "+humanize.IBytes(uint64(big))+" sparse", big, o, "peak RSS ≤ 256 MiB",
		func(r result) bool { return r.Ours.MaxRSS <= 256<<20 })
	os.Remove(b.path("big.ova"))
	os.Remove(b.path("big.xva"))
	os.RemoveAll(b.path("big-out"))
	return nil
}

func (b *bench) print() {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "task\txva\tMiB/s\tcores\tRSS\tsize\tbaseline\tbaseline time\tRSS\tsize\tspeedup\tsize ratio\ttarget\tmet\t")
	for _, r := range b.results {
		rate := float64(r.DiskBytes) / (1 << 20) / max(r.Ours.Seconds, 1e-9)
		fmt.Fprintf(w, "%s\t%.2fs\t%.0f\t%.1f\t%s\t%s\t", r.Task, r.Ours.Seconds, rate, r.Ours.Cores(),
			mib(r.Ours.MaxRSS), mib(r.Ours.OutBytes))
		if t := r.Theirs; t != nil {
			fmt.Fprintf(w, "%s\t%.2fs\t%s\t%s\t%.2f×\t", t.Tool, t.Seconds, mib(t.MaxRSS), mib(t.OutBytes), r.Speedup)
			if r.SizeRatio > 0 {
				fmt.Fprintf(w, "%.3f\t", r.SizeRatio)
			} else {
				fmt.Fprint(w, "\t")
			}
		} else {
			fmt.Fprint(w, "\t\t\t\t\t\t")
		}
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Fprintf(w, "%s\t%s\t\n", r.Target, met)
	}
	w.Flush()
}

func mib(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

func (b *bench) save(path string) error {
	doc := struct {
		Machine string   `json:"machine"`
		Cores   int      `json:"cores"`
		Date    string   `json:"date"`
		Results []result `json:"results"`
	}{cpuModel(), b.jobs, time.Now().UTC().Format(time.RFC3339), b.results}
	buf, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fmt.Printf("\nresults written to %s\n", path)
	return os.WriteFile(path, buf, 0o644)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
