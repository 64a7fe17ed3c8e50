package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func TestOrderedKeepsOrder(t *testing.T) {
	var got []int
	p := NewOrdered(context.Background(), 4, func(v int) error {
		got = append(got, v)
		return nil
	}, nil)
	for i := range 200 {
		if err := p.Submit(func(context.Context) (int, error) {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			return i, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 {
		t.Fatalf("emitted %d results, want 200", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("result %d is %d", i, v)
		}
	}
}

func TestOrderedBoundsConcurrency(t *testing.T) {
	var running, peak atomic.Int32
	p := NewOrdered(context.Background(), 3, func(int) error { return nil }, nil)
	for range 50 {
		_ = p.Submit(func(context.Context) (int, error) {
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(200 * time.Microsecond)
			running.Add(-1)
			return 0, nil
		})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if peak.Load() > 3 {
		t.Fatalf("%d jobs ran at once, limit 3", peak.Load())
	}
}

func TestOrderedStopsOnError(t *testing.T) {
	boom := errors.New("boom")
	var emitted atomic.Int32
	var discarded atomic.Int32
	p := NewOrdered(context.Background(), 2, func(int) error {
		emitted.Add(1)
		return nil
	}, func(int) { discarded.Add(1) })
	var submitErr error
	for i := range 1000 {
		submitErr = p.Submit(func(context.Context) (int, error) {
			if i == 10 {
				return 0, boom
			}
			return i, nil
		})
		if submitErr != nil {
			break
		}
	}
	if !errors.Is(submitErr, boom) {
		t.Fatalf("Submit after failure returned %v, want boom", submitErr)
	}
	if err := p.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close returned %v, want boom", err)
	}
	if emitted.Load() != 10 {
		t.Fatalf("emitted %d results before the failing job, want 10", emitted.Load())
	}
}

func TestOrderedEmitError(t *testing.T) {
	boom := errors.New("emit failed")
	p := NewOrdered(context.Background(), 2, func(v int) error {
		if v == 3 {
			return boom
		}
		return nil
	}, nil)
	for i := range 20 {
		if p.Submit(func(context.Context) (int, error) { return i, nil }) != nil {
			break
		}
	}
	if err := p.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close returned %v, want emit error", err)
	}
}

func TestOrderedCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := NewOrdered(ctx, 2, func(int) error { return nil }, nil)
	cancel()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = p.Submit(func(ctx context.Context) (int, error) { return 0, ctx.Err() })
	}
	if !errors.Is(p.Close(), context.Canceled) {
		t.Fatal("Close after cancel did not report context.Canceled")
	}
}
