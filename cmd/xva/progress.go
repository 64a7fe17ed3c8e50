package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// Progress modes of --progress.
const (
	progressAuto  = "auto"  // bars when stderr is a terminal, else nothing
	progressBar   = "bar"   // bars, terminal or not
	progressPlain = "plain" // a line now and then, for CI logs
	progressNone  = "none"
)

// parseProgress checks a --progress value; always and never are accepted
// for bar and none.
func parseProgress(s string) (string, error) {
	switch s {
	case progressAuto, progressBar, progressPlain, progressNone:
		return s, nil
	case "always":
		return progressBar, nil
	case "never":
		return progressNone, nil
	}
	return "", usagef("--progress %q: want auto, bar, plain or none", s)
}

// reporter is what a command reports progress to: the library's
// per-disk reports, and transfers to or from a pool.
type reporter interface {
	StartDisk(device string, size int64)
	Advance(n int64)
	Stored(n int64)
	EndDisk()
	// transfer starts a display of bytes moved (total -1 if unknown) and
	// of the server task's progress (0–1, or -1 before it says).
	transfer(what string, total int64) func(n int64, task float64)
	// transferOf starts the display of one of several transfers running
	// at once (total unknown), which leaves the others' standing; end
	// says how it ended. Safe to call from several goroutines.
	transferOf(what string) (update func(n int64, task float64), end func(ok bool))
	close()
}

// newReporter makes the reporter mode asks for, writing to w (stderr).
func newReporter(mode string, w *os.File) reporter {
	if mode == progressAuto {
		mode = progressNone
		if term.IsTerminal(int(w.Fd())) {
			mode = progressBar
		}
	}
	switch mode {
	case progressBar:
		return newBars(w)
	case progressPlain:
		return &plainReporter{w: w, every: plainInterval()}
	}
	return nopReporter{}
}

type nopReporter struct{}

func (nopReporter) StartDisk(string, int64)                     {}
func (nopReporter) Advance(int64)                               {}
func (nopReporter) Stored(int64)                                {}
func (nopReporter) EndDisk()                                    {}
func (nopReporter) transfer(string, int64) func(int64, float64) { return nil }
func (nopReporter) close()                                      {}

func (nopReporter) transferOf(string) (func(int64, float64), func(bool)) { return nil, func(bool) {} }

// bars draws one bar per disk (and per transfer) with mpb: size done,
// percentage, rate, ETA and the archive bytes read or written. mpb was
// chosen over progressbar because it keeps finished bars on screen, one
// line each, and redraws several at once safely from other goroutines.
type bars struct {
	mu     sync.Mutex    // held by transferOf, whose bars come and go from several goroutines
	w      io.Writer     // stderr, hidden from mpb as a terminal when it reports no size
	width  int           // columns the bars may use
	p      *mpb.Progress // made when the first bar is, ended by close
	all    []*mpb.Bar    // every bar: mpb waits for each to complete
	cur    []*mpb.Bar
	stored *atomic.Int64 // the current disk's archive bytes
}

// Widths that decide a bar's fields: below fullWidth the archive figure
// goes, below midWidth the counters, the rate and the ETA too, so that
// the fields that stay never run together or wrap.
const (
	defaultWidth = 80 // a terminal that reports no size, or no terminal
	fullWidth    = 80
	midWidth     = 52
)

func newBars(w *os.File) *bars {
	b := &bars{w: w, width: defaultWidth}
	cols, rows, err := term.GetSize(int(w.Fd()))
	switch {
	case err == nil && cols > 0 && rows > 0:
		b.width = cols
	case err == nil:
		// A terminal that reports 0×0: mpb would ask it and draw no row.
		// Hidden behind a plain writer, it gets the default width.
		b.w = struct{ io.Writer }{w}
	}
	return b
}

// container returns the running mpb container, starting one if needed.
// Its width is always set, for a forced bar on a pipe and a terminal that
// reports no size (a serial console, some containers), which mpb is not
// shown as a terminal.
func (b *bars) container() *mpb.Progress {
	if b.p == nil {
		b.p = mpb.New(mpb.WithOutput(b.w), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh(),
			mpb.WithWidth(b.width))
	}
	return b.p
}

// filler is the bar itself where there is room for it, else nothing.
func (b *bars) filler(fields int) mpb.BarFillerBuilder {
	if room := b.width - fields - 3; room >= 10 {
		return mpb.BarStyle()
	}
	return mpb.NopStyle()
}

func (b *bars) StartDisk(device string, size int64) {
	b.finish()
	stored := new(atomic.Int64)
	b.stored = stored
	name := decor.Name(printable(device)+" ", decor.WC{W: 7, C: decor.DindentRight})
	var prepend, appendd []decor.Decorator
	fields := 0
	switch {
	case b.width >= fullWidth:
		prepend = []decor.Decorator{name, decor.CountersKibiByte("% .1f / % .1f", decor.WC{W: 21})}
		appendd = []decor.Decorator{decor.Percentage(decor.WC{W: 6}), rate(decor.WC{W: 13}), eta(decor.WC{W: 8}),
			decor.Any(func(decor.Statistics) string { return "  archive " + humanize.IBytes(uint64(stored.Load())) })}
		fields = 7 + 21 + 6 + 13 + 8 + 18
	case b.width >= midWidth:
		prepend = []decor.Decorator{name, decor.CountersKibiByte("% .1f / % .1f", decor.WC{W: 21})}
		appendd = []decor.Decorator{decor.Percentage(decor.WC{W: 6}), rate(decor.WC{W: 13})}
		fields = 7 + 21 + 6 + 13
	default:
		prepend = []decor.Decorator{name}
		appendd = []decor.Decorator{decor.Percentage(decor.WC{W: 6}), rate(decor.WC{W: 13})}
		fields = 7 + 6 + 13
	}
	b.add(b.container().New(size, b.filler(fields), mpb.BarWidth(min(30, max(b.width-fields-3, 1))),
		mpb.PrependDecorators(prepend...), mpb.AppendDecorators(appendd...)))
}

// minElapsed is how long a bar runs before it shows a rate or an ETA: over
// the first milliseconds, a burst into a buffer says nothing of the rate.
const minElapsed = time.Second

// rate shows a bar's average rate since it was made, frozen when it
// completes: nothing during its first second (unless it completes), then
// bytes per second. mpb's AverageSpeed stays blank for a bar that
// completes before its first redraw, which a fast disk does.
func rate(wc decor.WC) decor.Decorator {
	start := time.Now()
	var elapsed time.Duration
	return decor.Any(func(s decor.Statistics) string {
		done := s.Completed || s.Aborted
		if !done || elapsed == 0 {
			elapsed = max(time.Since(start), time.Millisecond)
		}
		if !done && elapsed < minElapsed {
			return ""
		}
		return " " + humanize.IBytes(uint64(float64(s.Current)/elapsed.Seconds())) + "/s"
	}, wc)
}

// eta shows the time left at the average rate so far: nothing during the
// first second or before any progress, "done" at the end.
func eta(wc decor.WC) decor.Decorator {
	start := time.Now()
	return decor.Any(func(s decor.Statistics) string {
		switch {
		case s.Completed:
			return " done"
		case s.Aborted:
			return ""
		}
		elapsed := time.Since(start)
		if elapsed < minElapsed || s.Current <= 0 || s.Total <= 0 {
			return ""
		}
		left := time.Duration(float64(s.Total-s.Current) / float64(s.Current) * float64(elapsed))
		return " " + left.Round(time.Second).String()
	}, wc)
}

// add makes bar one of the current ones.
func (b *bars) add(bar *mpb.Bar) {
	b.all = append(b.all, bar)
	b.cur = append(b.cur, bar)
}

func (b *bars) Advance(n int64) {
	if len(b.cur) > 0 {
		b.cur[0].IncrInt64(n)
	}
}

func (b *bars) Stored(n int64) {
	if b.stored != nil {
		b.stored.Add(n)
	}
}

func (b *bars) EndDisk() { b.finish() }

// finish ends the current bars: a bar short of its total (a disk that
// failed, an interrupted transfer) stops where it stands.
func (b *bars) finish() {
	for _, bar := range b.cur {
		if !bar.Completed() {
			bar.Abort(false)
		}
	}
	b.cur = nil
}

func (b *bars) transfer(what string, total int64) func(int64, float64) {
	moved := b.container().AddBar(max(total, 0), mpb.BarWidth(30),
		mpb.PrependDecorators(decor.Name(what+" ", decor.WC{W: 8, C: decor.DindentRight}),
			decor.OnCondition(decor.CountersKibiByte("% .1f / % .1f", decor.WC{W: 22}), total > 0),
			decor.OnCondition(decor.CurrentKibiByte("% .1f", decor.WC{W: 22}), total <= 0)),
		mpb.AppendDecorators(rate(decor.WC{W: 14})))
	task := b.container().AddBar(100, mpb.BarWidth(30),
		mpb.PrependDecorators(decor.Name("task ", decor.WC{W: 8, C: decor.DindentRight}),
			decor.Name("", decor.WC{W: 22})),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 6})))
	b.finish()
	b.add(moved)
	b.add(task)
	var mu sync.Mutex
	return func(n int64, p float64) {
		mu.Lock()
		defer mu.Unlock()
		if total <= 0 && n > moved.Current() {
			moved.SetTotal(n+1, false) // unknown size: keep the bar ahead
		}
		moved.SetCurrent(n)
		if p >= 0 {
			task.SetCurrent(int64(p * 100))
		}
	}
}

// transferNameWidth is the column of a transfer's name in transferOf.
const transferNameWidth = 30

// transferOf draws one line per transfer: its name, the bytes received,
// the rate and the host task's progress, then how it ended. Unlike
// transfer, it leaves the bars of the transfers still running alone.
func (b *bars) transferOf(what string) (func(int64, float64), func(bool)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var task atomic.Int64
	task.Store(-1)
	var ended atomic.Value
	ended.Store("")
	// One width for every name, so that the bars line up; a long name
	// is cut (the result lines say it whole).
	if r := []rune(what); len(r) > transferNameWidth-1 {
		what = string(r[:transferNameWidth-2]) + "…"
	}
	bar := b.container().AddBar(0, mpb.BarWidth(16),
		mpb.PrependDecorators(decor.Name(what+" ", decor.WC{W: transferNameWidth, C: decor.DindentRight}),
			decor.CurrentKibiByte("% .1f", decor.WC{W: 12})),
		mpb.AppendDecorators(rate(decor.WC{W: 14}), decor.Any(func(decor.Statistics) string {
			if e := ended.Load().(string); e != "" {
				return "  " + e
			}
			if t := task.Load(); t >= 0 {
				return fmt.Sprintf("  task %d%%", t)
			}
			return ""
		})))
	b.all = append(b.all, bar)
	var mu sync.Mutex
	update := func(n int64, p float64) {
		mu.Lock()
		defer mu.Unlock()
		if n >= bar.Current() {
			bar.SetTotal(n+1, false) // unknown size: keep the bar ahead
			bar.SetCurrent(n)
		}
		if p >= 0 {
			task.Store(int64(p * 100))
		}
	}
	end := func(ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if ok {
			ended.Store("done")
			bar.SetTotal(bar.Current(), true)
		} else {
			ended.Store("FAILED")
			bar.Abort(false)
		}
	}
	return update, end
}

// close ends the bars drawn so far and stops redrawing, so that the
// command's own output cannot be overdrawn; later bars start afresh.
func (b *bars) close() {
	if b.p == nil {
		return
	}
	b.cur = b.all
	b.finish()
	b.p.Wait()
	b.p, b.all = nil, nil
}

// plainReporter prints a line per disk when it starts and ends, and one
// every interval in between: readable in a CI log, where bars are noise.
type plainReporter struct {
	w            io.Writer
	every        time.Duration
	mu           sync.Mutex
	device       string
	size, done   int64
	stored       int64
	start, shown time.Time
}

// plainInterval is how often plain progress prints: 10 s, or
// XVA_PROGRESS_INTERVAL (a Go duration such as 30s).
func plainInterval() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("XVA_PROGRESS_INTERVAL")); err == nil && d > 0 {
		return d
	}
	return 10 * time.Second
}

func (p *plainReporter) StartDisk(device string, size int64) {
	p.device, p.size, p.done, p.stored = printable(device), size, 0, 0
	p.start, p.shown = time.Now(), time.Now()
	fmt.Fprintf(p.w, "xva: %s: %s to do\n", p.device, humanize.IBytes(uint64(size)))
}

func (p *plainReporter) Advance(n int64) {
	p.done += n
	if time.Since(p.shown) >= p.every {
		p.line(false)
	}
}

func (p *plainReporter) Stored(n int64) { p.stored += n }

func (p *plainReporter) EndDisk() {
	p.line(true)
}

// line prints where the disk stands. The rate and the ETA are left out
// during the first second, when a burst into a buffer says nothing of
// them; at the end the rate is the whole disk's.
func (p *plainReporter) line(end bool) {
	p.shown = time.Now()
	elapsed := time.Since(p.start)
	secs := max(elapsed.Seconds(), 1e-3)
	rate, eta, suffix := "", "", ""
	if end || elapsed >= minElapsed {
		rate = fmt.Sprintf(", %s/s", humanize.IBytes(uint64(float64(p.done)/secs)))
	}
	if r := float64(p.done) / secs; !end && elapsed >= minElapsed && r > 0 && p.done < p.size {
		eta = fmt.Sprintf(", ETA %s", time.Duration(float64(p.size-p.done)/r*float64(time.Second)).Round(time.Second))
	}
	if end {
		suffix = fmt.Sprintf(", done in %.1fs", elapsed.Seconds())
	}
	fmt.Fprintf(p.w, "xva: %s: %s of %s (%.0f%%)%s, archive %s%s%s\n", p.device,
		humanize.IBytes(uint64(p.done)), humanize.IBytes(uint64(p.size)), percent(p.done, p.size),
		rate, humanize.IBytes(uint64(p.stored)), eta, suffix)
}

func percent(n, of int64) float64 {
	if of <= 0 {
		return 100
	}
	return 100 * float64(n) / float64(of)
}

func (p *plainReporter) transfer(what string, total int64) func(int64, float64) {
	start := time.Now()
	fmt.Fprintf(p.w, "xva: %s: started\n", what)
	return func(n int64, task float64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if time.Since(p.shown) < p.every {
			return
		}
		p.shown = time.Now()
		of, t := "", "not started"
		if total > 0 {
			of = fmt.Sprintf(" of %s (%.0f%%)", humanize.IBytes(uint64(total)), percent(n, total))
		}
		if task >= 0 {
			t = fmt.Sprintf("%.0f%%", task*100)
		}
		fmt.Fprintf(p.w, "xva: %s: %s%s in %.0fs, task %s\n", what, humanize.IBytes(uint64(n)), of, time.Since(start).Seconds(), t)
	}
}

// transferOf prints when the transfer starts and then a line every
// interval, each transfer on its own clock, prefixed with its name.
func (p *plainReporter) transferOf(what string) (func(int64, float64), func(bool)) {
	start := time.Now()
	p.mu.Lock()
	fmt.Fprintf(p.w, "xva: %s: started\n", what)
	p.mu.Unlock()
	shown := start
	update := func(n int64, task float64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if time.Since(shown) < p.every {
			return
		}
		shown = time.Now()
		t := "not started"
		if task >= 0 {
			t = fmt.Sprintf("%.0f%%", task*100)
		}
		fmt.Fprintf(p.w, "xva: %s: %s in %.0fs, task %s\n", what, humanize.IBytes(uint64(n)), time.Since(start).Seconds(), t)
	}
	return update, func(bool) {}
}

func (p *plainReporter) close() {}
