package disk

import (
	"context"
	"io"
	"iter"
)

// section is a Source over size bytes of an io.ReaderAt it does not own.
type section struct {
	r    io.ReaderAt
	size int64
}

// Section returns a Source of the first size bytes of r (an image held in
// a file of a package, say); closing it leaves r open. It has no extents
// of its own: the image format read from it knows where its data is.
func Section(r io.ReaderAt, size int64) Source { return &section{r, size} }

func (s *section) Size() int64  { return s.size }
func (s *section) Close() error { return nil }
func (s *section) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	short := false
	if rest := s.size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := s.r.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// grown is a Source read as a longer disk, zeros past its end.
type grown struct {
	Source
	size int64
}

// Grow returns src as a disk of size bytes (at least src's): the bytes past
// src's end read as zeros and hold no data. Closing it closes src.
func Grow(src Source, size int64) Source {
	if size <= src.Size() {
		return src
	}
	return &grown{src, size}
}

func (g *grown) Size() int64 { return g.size }

func (g *grown) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.size {
		return 0, io.EOF
	}
	if rest := g.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n := 0
	if inner := g.Source.Size(); off < inner {
		m := min(int64(len(p)), inner-off)
		k, err := g.Source.ReadAt(p[:m], off)
		if err != nil && !(err == io.EOF && int64(k) == m) {
			return k, err
		}
		n = k
	}
	clear(p[n:])
	if off+int64(len(p)) == g.size {
		return len(p), io.EOF
	}
	return len(p), nil
}

func (g *grown) ParallelReads() bool { return ParallelReads(g.Source) }

func (g *grown) Extents(ctx context.Context) iter.Seq2[Extent, error] {
	return Extents(ctx, g.Source)
}

// clipped is a Source read as a shorter disk.
type clipped struct {
	Source
	size int64
}

// Clip returns src as a disk of its first size bytes (at most src's);
// its extents end there. Closing it closes src.
func Clip(src Source, size int64) Source {
	if size >= src.Size() {
		return src
	}
	return &clipped{src, size}
}

func (c *clipped) Size() int64 { return c.size }

func (c *clipped) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.size {
		return 0, io.EOF
	}
	if rest := c.size - off; int64(len(p)) > rest {
		n, err := c.Source.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return c.Source.ReadAt(p, off)
}

func (c *clipped) ParallelReads() bool { return ParallelReads(c.Source) }

func (c *clipped) Extents(ctx context.Context) iter.Seq2[Extent, error] {
	return func(yield func(Extent, error) bool) {
		for e, err := range Extents(ctx, c.Source) {
			if err != nil {
				yield(e, err)
				return
			}
			if e.Off >= c.size {
				return
			}
			e.Len = min(e.Len, c.size-e.Off)
			if !yield(e, nil) {
				return
			}
		}
	}
}
