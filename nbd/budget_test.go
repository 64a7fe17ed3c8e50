package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/testutil"
)

// TestMemoryBudget: many clients with many reads in flight against the
// smallest budget: reads wait for it rather than failing, every one is
// answered with the right bytes, and the bytes replies hold never exceed
// the budget, with hand-written clients (simple replies, DF, fragmented
// chunks) and with concurrent nbdcopy and qemu-img.
func TestMemoryBudget(t *testing.T) {
	testutil.NeedTools(t, "nbdcopy", "qemu-img")
	const budget = MinMaxMemory
	src := newMem(64*mib, disk.Extent{Off: 0, Len: 64 * mib})
	src.gate = make(chan struct{})
	srv := &Server{Exports: []Export{{Name: "d", Source: src}}, MaxMemory: budget}
	addr := serve(t, srv, unixSpec(t))
	openGate := sync.OnceFunc(func() { close(src.gate) })
	t.Cleanup(openGate) // before the server stops, should the test fail first
	mem := srv.memBudget()

	// Six connections, sixteen 4 MiB reads each: 384 MiB asked for at
	// once, while the source holds every read back.
	const conns, reads, size = 6, 16, 4 * mib
	type conn struct {
		c          *client
		structured bool
	}
	var cs []conn
	for i := range conns {
		c := dialHello(t, addr)
		c.conn.SetDeadline(time.Now().Add(60 * time.Second))
		structured := i%3 != 2
		c.goExport(t, "d", structured, false)
		var flags uint16
		if i%3 == 0 {
			flags = cmdFlagDF
		}
		for j := range reads {
			c.request(flags, cmdRead, uint64(j), uint64((i+j)%16)*size, size)
		}
		cs = append(cs, conn{c, structured})
	}
	// The budget fills up, to within one read of it, and stops there.
	for start := time.Now(); mem.held.Load() <= budget-size; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%d bytes held after 10 s, want the budget's %d", mem.held.Load(), budget)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if h := mem.held.Load(); h > budget {
		t.Fatalf("%d bytes held, over the budget of %d", h, budget)
	}
	openGate()

	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.c.replies(reads, size, c.structured)
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
				return
			}
			for j := range reads {
				off := ((i + j) % 16) * size
				if !bytes.Equal(got[uint64(j)], src.data[off:off+size]) {
					t.Errorf("connection %d, read %d: bytes differ", i, j)
				}
			}
		}()
	}
	wg.Wait()

	// Real clients, all at once: nbdcopy with four connections of 64
	// requests each (256 KiB, fragmented), qemu-img's 2 MiB reads.
	dir := t.TempDir()
	uri := URI(addr, "d", false)
	var cmds []func() error
	for i := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("copy%d.raw", i))
		cmds = append(cmds, func() error {
			return command("nbdcopy", "--connections=4", "--requests=64", uri, out)
		})
	}
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("convert%d.raw", i))
		cmds = append(cmds, func() error {
			return command("qemu-img", "convert", "-f", "raw", "-O", "raw", "-m", "16", "-W", uri, out)
		})
	}
	errs := make(chan error, len(cmds))
	for _, c := range cmds {
		go func() { errs <- c() }()
	}
	for range cmds {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	outs, _ := filepath.Glob(filepath.Join(dir, "*.raw"))
	for _, out := range outs {
		if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, src.data) {
			t.Errorf("%s: %v, or bytes differ", filepath.Base(out), err)
		}
	}

	// Every reply has let its bytes go; none ever held more than the
	// budget.
	for start := time.Now(); mem.held.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d bytes still held after every reply", mem.held.Load())
		}
	}
	if p := mem.peak.Load(); p > budget || p <= budget-size {
		t.Errorf("peak %d bytes held, want at most the budget (%d) and near it", p, budget)
	}
}

// replies reads the replies to n reads of size bytes each, cookies 0 to
// n-1, in whatever order they come and with chunks of different replies
// interleaved, and returns their bytes by cookie.
func (c *client) replies(n, size int, structured bool) (map[uint64][]byte, error) {
	got := map[uint64][]byte{}
	done := 0
	for done < n {
		if !structured {
			var h [16]byte
			if _, err := io.ReadFull(c.conn, h[:]); err != nil {
				return nil, err
			}
			if binary.BigEndian.Uint32(h[0:]) != simpleMagic || binary.BigEndian.Uint32(h[4:]) != 0 {
				return nil, fmt.Errorf("simple reply %x", h)
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(c.conn, b); err != nil {
				return nil, err
			}
			got[binary.BigEndian.Uint64(h[8:])] = b
			done++
			continue
		}
		var h [20]byte
		if _, err := io.ReadFull(c.conn, h[:]); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint32(h[0:]) != structuredMagic {
			return nil, fmt.Errorf("structured reply %x", h)
		}
		flags, typ, cookie := binary.BigEndian.Uint16(h[4:]), binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint64(h[8:])
		data := make([]byte, binary.BigEndian.Uint32(h[16:]))
		if _, err := io.ReadFull(c.conn, data); err != nil {
			return nil, err
		}
		if typ != replyOffsetData {
			return nil, fmt.Errorf("reply %d: chunk type %#x", cookie, typ)
		}
		if got[cookie] == nil {
			got[cookie] = make([]byte, 0, size)
		}
		// Chunks of one reply come in order here: each is read and sent
		// before the next.
		got[cookie] = append(got[cookie], data[8:]...)
		if flags&replyFlagDone != 0 {
			done++
		}
	}
	return got, nil
}

// command runs a client with a deadline.
func command(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// TestMemoryBudgetTooSmall: a budget under the longest read is refused.
func TestMemoryBudgetTooSmall(t *testing.T) {
	l, _, err := Listen(unixSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &Server{Exports: testExports(), MaxMemory: MinMaxMemory - 1}
	if err := srv.Serve(context.Background(), l); err == nil {
		t.Fatal("Serve accepted a budget under the longest read")
	}
}
