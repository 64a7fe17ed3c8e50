package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/xapi"
)

// UploadOptions say how Upload imports a VM.
type UploadOptions struct {
	SR      string // uuid of the SR to import into; "" for the pool's default
	Restore bool   // keep the VM's uuid and MACs
	Force   bool   // import despite checksum mismatches
	// AsIs sends an archive file exactly as it is, a legacy one too (for
	// hosts before 2021), without checking what the host would refuse.
	AsIs bool
	// Checksum is the block hash to send. 0 picks what every host of the
	// pool reads: SHA-1 when a host says it is older than xapi 1.250,
	// xxhash otherwise (see xapi.XXHashSince).
	Checksum chunk.Checksum
	// Network, a network's uuid or name, gives the imported VM a network
	// interface on that network.
	Network string
	// Progress, if set, is told the bytes sent of total (-1 when the VM is
	// converted on the fly) and the task's progress (0-1, or -1).
	Progress func(sent, total int64, task float64)
}

// LegacyAsIsError is the failure of an import of a legacy archive sent as
// it is (AsIs): hosts since 2021 import no legacy archives.
type LegacyAsIsError struct{ Err error }

func (e *LegacyAsIsError) Error() string { return e.Err.Error() }
func (e *LegacyAsIsError) Unwrap() error { return e.Err }

// UploadResult is what an upload made.
type UploadResult struct {
	VMRef, VMUUID string
	Sent          int64
	Seconds       float64
	Converted     bool   // the VM was converted on the way (generation or checksum)
	Checksum      string // the block hash sent: "xxhash" or "sha1"; "" when sent as it is
	VIFs          int    // network interfaces the VM has after the import
	Network       string // ref of the network xva gave it an interface on, if any
}

// Upload imports the VM at input (an archive of either generation, or a
// VM directory) into the pool c is logged in to, through PUT /import. An
// xapi archive file whose hash the pool reads is sent as it is, with its
// length; anything else is converted to the xapi generation on the fly.
// Before anything is sent, an xapi archive's ova.xml is checked for what a
// host would refuse (ova.Export.ImportProblems, and a version block newer
// than the oldest host), refused as corrupt unless AsIs.
func Upload(ctx context.Context, c *xapi.Client, input string, uo UploadOptions, opts ...Option) (*UploadResult, error) {
	start := time.Now()
	oldest, err := c.OldestXapi(ctx)
	if err != nil {
		return nil, err
	}
	sum := uo.Checksum
	if sum == 0 {
		sum = chunk.XXHash
		if !oldest.ReadsXXHash() {
			sum = chunk.SHA1
		}
	}
	var network, sr string
	if uo.Network != "" {
		if network, err = c.NetworkByNameOrUUID(ctx, uo.Network); err != nil {
			return nil, err
		}
	}
	if uo.SR != "" {
		if sr, err = c.SRByUUID(ctx, uo.SR); err != nil {
			return nil, fmt.Errorf("SR %s: %w", uo.SR, err)
		}
	}
	body, length, err := uploadBody(ctx, input, uo.AsIs, sum, uo.Checksum != 0, oldest, opts)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var progress func(int64, float64)
	if uo.Progress != nil {
		progress = func(sent int64, task float64) { uo.Progress(sent, length, task) }
	}
	res, err := c.Import(ctx, body, xapi.ImportOptions{SR: sr, Restore: uo.Restore, Force: uo.Force, Length: length, Progress: progress})
	// Whatever became of the upload, stop a conversion feeding it: its
	// next write fails and it returns.
	body.Close()
	if perr := body.produced(); perr != nil {
		return nil, perr // the input could not be read: that is the cause
	}
	// The host answering the import of a legacy archive with an import
	// error: current hosts import none.
	var xe *xapi.Error
	if err != nil && body.legacy && errors.As(err, &xe) && strings.HasPrefix(xe.Code, "IMPORT_ERROR") {
		return nil, &LegacyAsIsError{err}
	}
	if err != nil {
		return nil, err
	}
	out := &UploadResult{VMRef: res.VMRef, VMUUID: res.VMUUID, Sent: res.Sent, Converted: body.converted}
	if body.converted {
		out.Checksum = sum.String()
	}
	devs, err := c.VIFDevices(ctx, res.VMRef)
	if err != nil {
		return nil, err
	}
	if network != "" {
		next := 0
		for _, d := range devs {
			next = max(next, d+1)
		}
		if _, err := c.CreateVIF(ctx, res.VMRef, network, next); err != nil {
			return nil, fmt.Errorf("the VM %s was imported, but giving it a network interface failed: %w", res.VMUUID, err)
		}
		devs = append(devs, next)
		out.Network = network
	}
	out.VIFs = len(devs)
	out.Seconds = time.Since(start).Seconds()
	return out, nil
}

// body is what goes to /import: a file as it is, or a conversion's output.
type body struct {
	io.ReadCloser
	converted bool
	legacy    bool       // a legacy archive sent as it is
	done      chan error // the conversion's result; nil for a file
}

// produced waits for the conversion and returns its error, unless the
// only error was that the upload stopped reading.
func (b *body) produced() error {
	if b.done == nil {
		return nil
	}
	err := <-b.done
	b.done = nil
	if errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

// uploadBody opens input for the upload. It returns the body and its
// length, -1 when it is converted on the fly.
func uploadBody(ctx context.Context, input string, asIs bool, sum chunk.Checksum, chosen bool, oldest xapi.XapiVersion, opts []Option) (*body, int64, error) {
	if IsObjectURL(input) {
		return objectUploadBody(ctx, input, asIs, sum, oldest, opts)
	}
	st, err := os.Stat(input)
	if err != nil {
		return nil, 0, err
	}
	if asIs && !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%w: --as-is sends an archive file as it is; %s is not one", ErrBadOptions, input)
	}
	ovfInput := IsOVF(input)
	if asIs && ovfInput {
		return nil, 0, fmt.Errorf("%w: --as-is sends an XVA archive as it is; %s is an OVF package, which is converted on the way", ErrBadOptions, input)
	}
	if ovfInput {
		if err := preflightOVF(input, oldest); err != nil {
			return nil, 0, err
		}
	} else if st.Mode().IsRegular() {
		meta, kind, err := readHead(input)
		if err != nil {
			return nil, 0, err
		}
		// Every host reads SHA-1 .checksum members (stream_vdi.ml:613-614),
		// unless another hash was asked for.
		sendAsIs := asIs || meta.Generation == XAPI && (kind == sum || kind == 0 || kind == chunk.SHA1 && !chosen)
		if meta.Generation == XAPI && !asIs {
			if err := preflight(meta.Export, oldest); err != nil {
				return nil, 0, err
			}
		}
		if sendAsIs && !asIs {
			if err := blockLayout(input, meta); err != nil {
				return nil, 0, err
			}
		}
		if sendAsIs {
			f, err := os.Open(input)
			if err != nil {
				return nil, 0, err
			}
			return &body{ReadCloser: f, legacy: meta.Generation == Legacy}, st.Size(), nil
		}
	} else if meta, err := headOf(input); err == nil && meta.Generation == XAPI && !asIs {
		if err := preflight(meta.Export, oldest); err != nil {
			return nil, 0, err
		}
	}
	return convertedBody(ctx, input, sum, opts), -1, nil
}

// objectUploadBody sends an archive in object storage: converted on the
// fly (its every hash checked on the way), as the host's hash wants it.
func objectUploadBody(ctx context.Context, input string, asIs bool, sum chunk.Checksum, oldest xapi.XapiVersion, opts []Option) (*body, int64, error) {
	if asIs {
		return nil, 0, fmt.Errorf("%w: --as-is sends a local archive file as it is; %s is in object storage, and is converted on the way", ErrBadOptions, input)
	}
	meta, _, err := readHead(input)
	if err != nil {
		return nil, 0, err
	}
	if meta.Generation == XAPI {
		if err := preflight(meta.Export, oldest); err != nil {
			return nil, 0, err
		}
	}
	return convertedBody(ctx, input, sum, opts), -1, nil
}

// convertedBody is input converted to an xapi stream as it is sent.
func convertedBody(ctx context.Context, input string, sum chunk.Checksum, opts []Option) *body {
	pr, pw := io.Pipe()
	b := &body{ReadCloser: pr, converted: true, done: make(chan error, 1)}
	go func() {
		_, err := StreamXapi(ctx, input, pw, append(slices.Clone(opts), WithChecksum(sum))...)
		pw.CloseWithError(err)
		b.done <- err
	}()
	return b
}

// preflightOVF checks the VM of an OVF package as its xapi archive will
// describe it, before anything is sent.
func preflightOVF(input string, oldest xapi.XapiVersion) error {
	in, m, err := openOVFMetadata(input)
	if err != nil {
		return err
	}
	defer in.close()
	if m, err = convertMetadata(m, XAPI, ""); err != nil {
		return err
	}
	return preflight(m.Export, oldest)
}

// headOf reads the metadata of a VM directory or an archive directory.
func headOf(dir string) (*Metadata, error) {
	if IsVMDir(dir) {
		m, _, err := readVMDir(dir)
		return m, err
	}
	m, _, err := readHead(dir)
	return m, err
}

// readHead reads an archive's ova.xml and, for the xapi generation, the
// hash of its first checksum member (0 if it has none): the first members
// only, however large the archive.
func readHead(input string) (*Metadata, chunk.Checksum, error) {
	c, err := openContainer(input, 1)
	if err != nil {
		return nil, 0, err
	}
	defer c.close()
	m, err := c.next()
	if err != nil {
		if err == io.EOF {
			return nil, 0, fmt.Errorf("%w: %s is empty", ErrNotArchive, input)
		}
		return nil, 0, err
	}
	if m.name != "ova.xml" {
		return nil, 0, corrupt(KindMetadata, m.raw, "", -1, "the first member must be ova.xml")
	}
	doc, err := io.ReadAll(io.LimitReader(m.r, maxOVASize+1))
	if err != nil {
		return nil, 0, err
	}
	meta, err := ParseMetadata(doc)
	if err != nil {
		return nil, 0, corrupt(KindMetadata, "ova.xml", "", -1, "%v", err)
	}
	if meta.Generation != XAPI {
		return meta, 0, nil
	}
	for {
		m, err := c.next()
		if err == io.EOF {
			return meta, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		switch path.Ext(m.name) {
		case chunk.XXHash.Ext():
			return meta, chunk.XXHash, nil
		case chunk.SHA1.Ext():
			return meta, chunk.SHA1, nil
		}
	}
}

// preflight refuses an xapi archive a host would refuse, before anything
// is sent: what ImportProblems finds, and a version block newer than the
// oldest host of the pool (Importexport.assert_compatible compares
// xapi_major and xapi_minor).
func preflight(e *ova.Export, oldest xapi.XapiVersion) error {
	problems := e.ImportProblems()
	v := e.Root.Field("version")
	major, _ := ova.OCamlInt64(v.Field("xapi_major").Str())
	minor, _ := ova.OCamlInt64(v.Field("xapi_minor").Str())
	if oldest.Less(xapi.XapiVersion{Major: int(major), Minor: int(minor)}) {
		problems = append(problems, ova.ImportProblem{Object: "version", Field: "xapi_minor", Answer: "IMPORT_INCOMPATIBLE_VERSION",
			Detail: fmt.Sprintf("the archive says xapi %d.%d, newer than the pool's oldest host (%s)", major, minor, oldest)})
	}
	if len(problems) == 0 {
		return nil
	}
	more := ""
	if len(problems) > 1 {
		more = fmt.Sprintf(" (and %d more; 'xva verify' lists them all)", len(problems)-1)
	}
	return corrupt(KindImport, "ova.xml", "", -1, "a host would refuse this archive: %s%s; nothing was sent (--as-is sends it anyway)", problems[0], more)
}

// blockLayout refuses an xapi archive file whose blocks the host would
// misread (chunk.XapiMisreads), before it is sent as it is. Only the tar
// headers are read, so only an uncompressed tar file is checked; a
// compressed one would have to be read whole ('xva verify' does that).
func blockLayout(input string, meta *Metadata) error {
	c, err := openContainer(input, 1)
	if err != nil {
		return err
	}
	defer c.close()
	if !c.random() {
		return nil // a stream, compressed or not
	}
	first := int64(-1)
	seqs := map[string]*chunk.BlockSeq{}
	for {
		m, err := c.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		d := meta.DiskOf(m.name)
		if d == nil {
			continue
		}
		seq := seqs[d.ID]
		if seq == nil {
			seq = chunk.NewBlockSeq(d.ID, d.Size)
			seqs[d.ID] = seq
		}
		if chunk.IsChecksumName(m.name) {
			seq.Checksum(m.name)
			continue
		}
		before := seq.Pos()
		off, err := seq.Data(m.name, m.size)
		if err != nil {
			continue // not for the host to misread: verify reports it
		}
		if first < 0 {
			first = m.size
		}
		if msgs := chunk.XapiMisreads(first, off-before, off, m.size); len(msgs) > 0 {
			return corrupt(KindImport, m.name, d.Device, off, "a host would refuse this archive or misplace its data: %s; nothing was sent (--as-is sends it anyway)", msgs[0])
		}
	}
}
