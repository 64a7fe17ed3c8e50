package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/xva-tools/xva/xapi"
)

// ExportOptions say how Export downloads a VM.
type ExportOptions struct {
	// Compression asks the host to compress the stream: "zstd", "gzip",
	// or "" for a plain tar.
	Compression string
	// Progress, if set, is told the bytes received and the task's
	// progress (0-1, or -1).
	Progress func(received int64, task float64)
}

// ExportResult is what an export received.
type ExportResult struct {
	Received int64
	Seconds  float64
	// Problems are every problem the check of the download found, in the
	// order found; a download with any is corrupt.
	Problems []*CorruptError
}

// Export downloads the halted or suspended VM with uuid from the pool c is
// logged in to (GET /export) into w, checking every byte as it streams:
// each block's hash, the members' names and order, ova.xml, what a host
// would refuse, the tar and compression framing. The download is read once;
// the check runs beside it on one reader (WithDiscard), in bounded memory.
// A corrupt download returns a *CorruptError, the first problem, after the
// whole download was checked (ExportResult.Problems has them all): w then
// holds bytes that must not be used.
func Export(ctx context.Context, c *xapi.Client, uuid string, w io.Writer, eo ExportOptions, opts ...Option) (*ExportResult, error) {
	start := time.Now()
	pr, pw := io.Pipe()
	res := &ExportResult{}
	checked := make(chan error, 1)
	go func() {
		err := checkStream(pr, res, opts)
		io.Copy(io.Discard, pr) // let the download finish even if the check stopped
		checked <- err
	}()
	got, err := c.Export(ctx, uuid, io.MultiWriter(w, pw), xapi.ExportOptions{Compression: eo.Compression, Progress: eo.Progress})
	pw.CloseWithError(err)
	cerr := <-checked
	if err != nil {
		return nil, err
	}
	res.Received, res.Seconds = got.Received, time.Since(start).Seconds()
	if len(res.Problems) > 0 {
		first := *res.Problems[0]
		if n := len(res.Problems); n > 1 {
			first.Err = fmt.Errorf("%w (and %d more problems)", first.Err, n-1)
		}
		return res, &first
	}
	if cerr != nil {
		return res, fmt.Errorf("checking the download: %w", cerr)
	}
	return res, nil
}

// checkStream reads an archive from r to its end through a Reader that
// goes on past every problem, collecting them into res. It returns what
// stopped it other than a problem (an I/O error).
func checkStream(r io.Reader, res *ExportResult, opts []Option) error {
	collect := func(e *CorruptError) error { res.Problems = append(res.Problems, e); return nil }
	rd, err := NewReader(r, append(slices.Clone(opts), WithOnProblem(collect), WithDiscard(true))...)
	if err != nil {
		return stopWith(res, err)
	}
	defer rd.Close()
	for {
		_, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return stopWith(res, err)
		}
	}
}

// stopWith records a corruption that stopped the check as the first
// problem (what came of it, such as disks left without data, was told
// before it); any other error is returned.
func stopWith(res *ExportResult, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		res.Problems = append([]*CorruptError{ce}, res.Problems...)
		return nil
	}
	return err
}
