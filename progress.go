package xva

import "sync"

// Progress receives progress reports. Its methods are called from one
// goroutine at a time. Amounts are raw disk bytes, holes included, so a bar
// reaches the disk's size at the end whatever its content.
type Progress interface {
	// StartDisk begins a disk of size bytes.
	StartDisk(device string, size int64)
	// Advance adds n processed bytes to the current disk.
	Advance(n int64)
	// Stored adds n bytes of the archive side: written by pack and
	// convert, read by unpack and verify.
	Stored(n int64)
	// EndDisk ends the current disk.
	EndDisk()
}

type nopProgress struct{}

func (nopProgress) StartDisk(string, int64) {}
func (nopProgress) Advance(int64)           {}
func (nopProgress) Stored(int64)            {}
func (nopProgress) EndDisk()                {}

// lockedProgress serialises calls, so decoders running concurrently can
// share one Progress.
type lockedProgress struct {
	mu sync.Mutex
	p  Progress
}

func (l *lockedProgress) StartDisk(device string, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.StartDisk(device, size)
}

func (l *lockedProgress) Advance(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Advance(n)
}

func (l *lockedProgress) Stored(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Stored(n)
}

func (l *lockedProgress) EndDisk() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.EndDisk()
}
