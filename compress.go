package xva

import (
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/xva-tools/xva/internal/pipeline"
)

// Whole-archive compression, as xapi's export writes and its import reads:
// the tar stream piped through gzip or zstd.

// maxZstdWindow bounds the memory a zstd stream may make us allocate.
const maxZstdWindow = 128 << 20

// decompress returns a reader of the decompressed stream r. gzip is read
// with pgzip's read-ahead (inflating overlaps reading and parsing); zstd
// with the klauspost decoder, its window capped.
func decompress(r io.Reader, kind string, jobs int) (io.ReadCloser, error) {
	switch kind {
	case "gzip":
		return pgzip.NewReaderN(r, 1<<20, 4)
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(min(pipeline.Jobs(jobs), 4)),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("xva: unknown compression %q", kind)
}

// compressor wraps w in a parallel gzip (at level) or zstd writer. Both give the same
// bytes whatever the number of workers: pgzip's output depends on its block
// size and level only, zstd's encoder splits the stream by size alone.
func compressor(w io.Writer, kind string, level, jobs int) (io.WriteCloser, error) {
	jobs = pipeline.Jobs(jobs)
	switch kind {
	case "gzip":
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, err
		}
		if err := zw.SetConcurrency(1<<20, 2*jobs); err != nil {
			return nil, err
		}
		// pgzip writes uint32(ModTime.Unix()) whatever ModTime is; only the
		// Unix epoch gives the 0 that makes the output reproducible.
		zw.ModTime = time.Unix(0, 0)
		return zw, nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(jobs), zstd.WithEncoderLevel(zstd.SpeedDefault))
	}
	return nil, fmt.Errorf("xva: unknown compression %q (want none, gzip or zstd)", kind)
}
