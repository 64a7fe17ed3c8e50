package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/xva-tools/xva"
)

// newProgress returns the progress display mode asks for: "auto" shows it
// only when stderr is a terminal.
func newProgress(mode string, _ bool) xva.Progress {
	switch mode {
	case "always":
	case "auto":
		if !isTerminal(os.Stderr) {
			return nil
		}
	default:
		return nil
	}
	return &lineProgress{w: os.Stderr}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// lineProgress redraws one line per disk: bytes done, total, rate.
type lineProgress struct {
	w            io.Writer
	device       string
	size, done   int64
	start, drawn time.Time
}

func (p *lineProgress) StartDisk(device string, size int64) {
	p.device, p.size, p.done = device, size, 0
	p.start = time.Now()
	p.draw()
}

func (p *lineProgress) Advance(n int64) {
	p.done += n
	if time.Since(p.drawn) >= 200*time.Millisecond {
		p.draw()
	}
}

func (p *lineProgress) EndDisk() {
	p.draw()
	fmt.Fprintln(p.w)
}

func (p *lineProgress) draw() {
	p.drawn = time.Now()
	pct := 100.0
	if p.size > 0 {
		pct = 100 * float64(p.done) / float64(p.size)
	}
	rate := float64(p.done) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r%-8s %10s / %-10s %5.1f%%  %s/s   ", p.device,
		humanize.IBytes(uint64(p.done)), humanize.IBytes(uint64(p.size)), pct, humanize.IBytes(uint64(rate)))
}

// newTransferProgress shows bytes moved and the task's progress for upload
// and export, on a terminal (or always, or never).
func newTransferProgress(mode, what string) func(bytes int64, task float64) {
	if mode == "never" || mode == "auto" && !isTerminal(os.Stderr) || mode != "auto" && mode != "always" {
		return nil
	}
	var last time.Time
	return func(n int64, task float64) {
		if time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		t := "…"
		if task >= 0 {
			t = fmt.Sprintf("%3.0f%%", task*100)
		}
		fmt.Fprintf(os.Stderr, "\r%s: %10s   task %s   ", what, humanize.IBytes(uint64(n)), t)
	}
}
