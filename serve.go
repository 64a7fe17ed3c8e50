package xva

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/xva-tools/xva/nbd"
)

// ServeOptions says where and how ServeNBD listens.
type ServeOptions struct {
	// Listen is "unix:PATH" or "tcp:HOST:PORT" (HOST 127.0.0.1 when empty;
	// port 0 for any).
	Listen string
	// TLS, when set, makes the server require TLS (NBD_OPT_STARTTLS).
	TLS *tls.Config
	// Log receives each failed read (export, offset, member), and nil
	// discards them.
	Log *slog.Logger
	// MaxMemory bounds the bytes replies to reads hold at once, every
	// client together (0: 256 MiB); a read waits for room. At least
	// MinServeMemory.
	MaxMemory int64
}

// MinServeMemory is the smallest ServeOptions.MaxMemory: the longest read
// a client may ask for (32 MiB), which some replies hold whole.
const MinServeMemory = nbd.MinMaxMemory

// ServedDisk is one disk ServeNBD exports.
type ServedDisk struct {
	Device string `json:"device"`
	Size   int64  `json:"size_bytes"`
	URI    string `json:"uri"`
}

// Serving is what ServeNBD serves, once clients can connect.
type Serving struct {
	Listen  string       // the address listened on, port 0 resolved
	Disks   []ServedDisk // the exports
	Indexed *IndexBuild  // the gzip indexes opening built, nil for none
}

// ServeNBD exports every disk of the archive at path read-only over NBD,
// each under its device's name, until ctx is done. ready is told what is
// served, once clients can connect.
// Every byte served is checked as OpenDisks checks it; a range that fails
// is an I/O error for that read alone, logged, and the server goes on.
func ServeNBD(ctx context.Context, path string, so ServeOptions, ready func(Serving), opts ...Option) error {
	if so.MaxMemory < 0 || so.MaxMemory > 0 && so.MaxMemory < MinServeMemory {
		return fmt.Errorf("%w: a memory budget of %d bytes: want at least %d MiB, the longest read a client may ask for", ErrBadOptions, so.MaxMemory, MinServeMemory>>20)
	}
	ad, err := OpenDisks(ctx, path, opts...)
	if err != nil {
		return err
	}
	defer ad.Close()
	if len(ad.Disks) == 0 {
		return fmt.Errorf("xva: %s holds no disk to serve", path)
	}
	l, spec, err := nbd.Listen(so.Listen)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadOptions, err)
	}
	s := &nbd.Server{TLSConfig: so.TLS, Log: so.Log, MaxMemory: so.MaxMemory}
	var served []ServedDisk
	for _, d := range ad.Disks {
		s.Exports = append(s.Exports, nbd.Export{Name: d.Device, Description: fmt.Sprintf("disk %s of %s", d.Device, path), Source: d})
		served = append(served, ServedDisk{Device: d.Device, Size: d.Size(), URI: nbd.URI(spec, d.Device, so.TLS != nil)})
	}
	if ready != nil {
		ready(Serving{Listen: spec, Disks: served, Indexed: ad.Indexed})
	}
	return s.Serve(ctx, l)
}

// An archive's disk lends the server its checked spans: replies are
// written from them without a copy.
var _ nbd.Lender = (*ArchiveDisk)(nil)
