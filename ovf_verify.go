package xva

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"slices"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/ovf"
)

// OVFCheck is what CheckOVF found of an OVF package.
type OVFCheck struct {
	Form    string         // "ova" or "ovf directory"
	Version string         // the envelope's OVF version
	Disks   []OVFDiskCheck // in the VM's order
	Notes   []string
	// BytesRead counts the package's bytes read: every file once for the
	// manifest, then each disk's data.
	BytesRead int64
}

// OVFDiskCheck says what was checked of one disk of a package.
type OVFDiskCheck struct {
	Device   string
	ID       string // the disk's ovf:diskId
	File     string // its href, "" for a blank disk
	Size     int64
	Members  int      // its files in the package (chunks, or one)
	Verified int64    // bytes of data read and found well-formed
	Checks   []string // what was checked: manifest digest, image structure, capacity
}

// CheckOVF checks the OVF package at path end to end: every file against
// its manifest digest (SHA-1, SHA-256 or SHA-512) and the manifest against
// the package, then each disk's image, read whole through its format's
// reader (structure, compressed grains, capacity against the descriptor).
// Each problem found goes to problem, and the check goes on; an error that
// stops it (the package unreadable, an I/O error) is returned.
func CheckOVF(ctx context.Context, path string, problem func(*CorruptError), opts ...Option) (*OVFCheck, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	in, err := openOVF(path)
	if err != nil {
		return nil, err
	}
	defer in.close()
	res := &OVFCheck{Form: in.pkg.Form(), Version: in.desc.Version}
	if res.Form == "ovf" {
		res.Form = "ovf directory"
	}
	if err := in.checkManifest(ctx, res, problem); err != nil {
		return nil, err
	}
	for _, d := range in.disks {
		dc := OVFDiskCheck{Device: d.device, ID: d.disk.ID, Size: d.disk.Capacity, Checks: []string{"capacity"}}
		if d.file != nil {
			dc.File = d.file.Href
			dc.Members, _ = in.stored(*d.file)
			dc.Checks = append(dc.Checks, "image-structure")
			if in.manifest != nil {
				dc.Checks = append(dc.Checks, "manifest-digest")
			}
			n, err := in.checkDisk(ctx, d, o)
			dc.Verified = n
			res.BytesRead += n
			if ce, ok := asCorrupt(err); ok {
				if ce.Disk == "" {
					ce.Disk = d.device
				}
				problem(ce)
			} else if err != nil {
				return nil, err
			}
		}
		res.Disks = append(res.Disks, dc)
	}
	res.Notes = append(in.allNotes(), res.Notes...)
	return res, nil
}

// checkManifest hashes every file the manifest lists, in package order,
// and reports a digest that differs, a listed file the package lacks, and
// a file the manifest must list and does not: the descriptor and every
// file of its References (each chunk of a chunked one). Other files of the
// package (a README beside an .ovf) are none of its business.
func (in *ovfInput) checkManifest(ctx context.Context, res *OVFCheck, problem func(*CorruptError)) error {
	if in.manifest == nil {
		res.Notes = append(res.Notes, "the package has no manifest: its files' digests cannot be checked")
		return nil
	}
	mf := in.pkg.ManifestName()
	for _, name := range in.unlisted() {
		problem(corrupt(KindMissing, mf, "", -1, "the manifest lists no digest of %s", name).(*CorruptError))
	}
	for _, e := range in.manifestOrder() {
		if err := ctx.Err(); err != nil {
			return err
		}
		sum, n, err := in.digest(e.Name, e.Algorithm)
		res.BytesRead += n
		if ce, ok := asCorrupt(err); ok {
			problem(ce)
			continue
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(sum, e.Digest) != 1 {
			problem(corrupt(KindChecksum, e.Name, "", -1, "%s digest %x, the manifest says %x", e.Algorithm, sum, e.Digest).(*CorruptError))
		}
	}
	return nil
}

// unlisted is the files the manifest must list and does not.
func (in *ovfInput) unlisted() []string {
	var names []string
	need := func(name string) {
		if _, ok := in.manifest.Lookup(name); !ok {
			names = append(names, name)
		}
	}
	need(in.pkg.DescriptorName())
	for _, f := range in.desc.Files {
		if f.ChunkSize == 0 {
			need(f.Href)
			continue
		}
		for _, m := range in.pkg.Members() {
			if isChunkOf(m.Name, f.Href) {
				need(m.Name)
			}
		}
	}
	return names
}

// manifestOrder is the manifest's entries in the order their files lie in
// the package, those it does not hold last: one pass over an OVA.
func (in *ovfInput) manifestOrder() []ovf.ManifestEntry {
	at := map[string]int{}
	for i, m := range in.pkg.Members() {
		at[m.Name] = i
	}
	order := slices.Clone(in.manifest.Entries)
	slices.SortStableFunc(order, func(a, b ovf.ManifestEntry) int {
		i, ok := at[a.Name]
		if !ok {
			i = len(at)
		}
		j, ok := at[b.Name]
		if !ok {
			j = len(at)
		}
		return i - j
	})
	return order
}

// digest hashes one file of the package with the algorithm named.
func (in *ovfInput) digest(name, algorithm string) ([]byte, int64, error) {
	h, err := ovf.NewHash(algorithm)
	if err != nil {
		return nil, 0, err
	}
	r, _, err := in.pkg.Open(name)
	switch {
	case err == nil:
	case errors.Is(err, ovf.ErrCorrupt):
		return nil, 0, ovfError(name, err)
	case !in.pkg.Has(name):
		return nil, 0, corrupt(KindMissing, name, "", -1, "the manifest lists %s, which the package lacks", name)
	default:
		return nil, 0, err
	}
	defer r.Close()
	n, err := io.Copy(h, r)
	if err != nil {
		return nil, n, ioError{err}
	}
	return h.Sum(nil), n, nil
}

// checkDisk reads disk d's data whole through its image format's reader
// and returns the bytes of data read.
func (in *ovfInput) checkDisk(ctx context.Context, d ovfDisk, o *options) (int64, error) {
	src, err := in.source(d, spoolDir(""))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	o.progress.StartDisk(d.device, src.Size())
	defer o.progress.EndDisk()
	r := disk.NewReaderJobs(ctx, src, o.jobs)
	defer r.Close()
	var n int64
	for p, err := range disk.Pieces(r) {
		if err != nil {
			return n, err
		}
		n += int64(len(p.Data))
		o.progress.Advance(int64(len(p.Data)))
	}
	return n, nil
}

// asCorrupt reports whether err is an integrity failure, and which.
func asCorrupt(err error) (*CorruptError, bool) {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return ce, true
	}
	return nil, false
}

// checkDigests checks the manifest's digests of the package in its own
// goroutine, beside a conversion reading the same files (which the page
// cache then serves once), and returns the function that waits for it: its
// error is the first problem found, an integrity failure, or what stopped
// the check.
func (in *ovfInput) checkDigests(ctx context.Context) func() error {
	if in.manifest == nil {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		var first *CorruptError
		err := in.checkManifest(ctx, &OVFCheck{}, func(e *CorruptError) {
			if first == nil {
				first = e
			}
		})
		if err == nil && first != nil {
			err = first
		}
		done <- err
	}()
	return func() error { return <-done }
}
