package xva

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/xva-tools/xva/internal/pipeline"
	"github.com/xva-tools/xva/internal/zstdseek"
)

// Whole-archive compression, as xapi's export writes and its import reads:
// the tar stream piped through gzip or zstd.

// maxZstdWindow bounds the memory a zstd stream may make us allocate: 2
// GiB, the largest window the zstd tool writes (zstd --long=31; the
// format allows more, which no tool writes). The decoder allocates what a
// frame declares, not this bound: zstd's default levels use 8 MiB or less,
// --long=27 128 MiB, --long=31 2 GiB, the same as zstd -d needs.
const maxZstdWindow = 1 << 31

// decompress returns a reader of the decompressed stream r. gzip is read
// with pgzip's read-ahead (inflating overlaps reading and parsing); zstd
// with the klauspost decoder, its window capped.
func decompress(r io.Reader, kind string, jobs int) (io.ReadCloser, error) {
	switch kind {
	case "gzip":
		zr, err := pgzip.NewReaderN(r, 1<<20, 4)
		if err != nil {
			return nil, err
		}
		return decompressed{zr, kind}, nil
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(min(pipeline.Jobs(jobs), 4)),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, err
		}
		return decompressed{d.IOReadCloser(), kind}, nil
	}
	return nil, fmt.Errorf("xva: unknown compression %q", kind)
}

// decompressed says what a whole-archive decompressor's errors are: the
// medium's stay I/O errors and truncation stays io.ErrUnexpectedEOF (the
// tar layer says where it fell); a zstd window over maxZstdWindow is
// unsupported; anything else is a damaged stream.
type decompressed struct {
	r    io.ReadCloser
	kind string
}

func (d decompressed) Close() error { return d.r.Close() }

func (d decompressed) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == nil || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || IsIOError(err) || IsCorrupt(err) {
		return n, err
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return n, fmt.Errorf("%w: the zstd stream needs a window of more than %d MiB, the most xva allows "+
			"(zstd --long=31 writes at most that): decompress it first, with zstd -d --long=31 --memory=4096MB, "+
			"and read the tar", ErrUnsupported, maxZstdWindow>>20)
	}
	return n, corrupt(KindCompression, "", "", -1, "the %s stream is damaged: %w", d.kind, err)
}

// compressor wraps w in a parallel gzip (at level) or zstd writer. Both give the same
// bytes whatever the number of workers: pgzip's output depends on its block
// size and level only; zstd is written in the seekable format, independent
// frames of zstdFrame bytes with a seek table at the end (a skippable frame
// every zstd reader passes over), so that the archive can be read at random.
// zstdFrame is the uncompressed size of a seekable zstd archive's frames:
// a read at random decodes at most one, and frames this size cost no
// measurable ratio against one frame.
const zstdFrame = 4 << 20

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
		return zstdseek.NewWriter(w, zstdFrame, jobs, zstd.SpeedDefault)
	}
	return nil, fmt.Errorf("xva: unknown compression %q (want none, gzip or zstd)", kind)
}
