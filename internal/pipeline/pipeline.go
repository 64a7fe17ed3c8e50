// Package pipeline is the one ordered, bounded worker pool that every encoder
// and decoder in xva uses: jobs run on a fixed number of workers and their
// results are delivered in submission order by a single goroutine.
//
// It imports nothing of the module.
package pipeline

import (
	"context"
	"runtime"
	"sync"
)

// Jobs returns the worker count for n: n itself when positive, otherwise
// GOMAXPROCS.
func Jobs(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Ordered runs submitted jobs on at most jobs workers and hands their results
// to emit in the order the jobs were submitted. At most 2×jobs results are in
// flight, so memory is bounded by the caller's unit size, never by the input.
//
// Submit and Close must be called from one goroutine; emit runs on another.
type Ordered[T any] struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	sem     chan struct{}
	queue   chan *slot[T]
	emitted chan struct{}
	workers sync.WaitGroup
	emit    func(T) error
	discard func(T)
}

type slot[T any] struct {
	ready chan struct{}
	v     T
	err   error
}

// NewOrdered starts an ordered pool. discard, if not nil, receives results
// that are dropped after a failure, so pooled buffers can be returned.
func NewOrdered[T any](ctx context.Context, jobs int, emit func(T) error, discard func(T)) *Ordered[T] {
	jobs = Jobs(jobs)
	ctx, cancel := context.WithCancelCause(ctx)
	o := &Ordered[T]{
		ctx:     ctx,
		cancel:  cancel,
		sem:     make(chan struct{}, jobs),
		queue:   make(chan *slot[T], 2*jobs),
		emitted: make(chan struct{}),
		emit:    emit,
		discard: discard,
	}
	go o.run()
	return o
}

// Context is cancelled when the pool fails; long jobs should watch it.
func (o *Ordered[T]) Context() context.Context { return o.ctx }

// Submit queues work. It blocks while the pool is full and returns the
// pool's error once the pool has failed or its context is done.
func (o *Ordered[T]) Submit(work func(ctx context.Context) (T, error)) error {
	s := &slot[T]{ready: make(chan struct{})}
	select {
	case o.queue <- s:
	case <-o.ctx.Done():
		return context.Cause(o.ctx)
	}
	select {
	case o.sem <- struct{}{}:
	case <-o.ctx.Done():
		s.err = context.Cause(o.ctx)
		close(s.ready)
		return s.err
	}
	o.workers.Add(1)
	go func() {
		defer o.workers.Done()
		defer func() { <-o.sem }()
		s.v, s.err = work(o.ctx)
		close(s.ready)
	}()
	return nil
}

func (o *Ordered[T]) run() {
	defer close(o.emitted)
	failed := false
	for s := range o.queue {
		<-s.ready
		if failed {
			o.drop(s)
			continue
		}
		err := s.err
		if err == nil {
			err = o.emit(s.v)
		} else {
			o.drop(s)
		}
		if err != nil {
			failed = true
			o.cancel(err)
		}
	}
}

func (o *Ordered[T]) drop(s *slot[T]) {
	if o.discard != nil && s.err == nil {
		o.discard(s.v)
	}
}

// Close waits for every submitted job to be emitted and returns the first
// error of a job, of emit, or of the context.
func (o *Ordered[T]) Close() error {
	close(o.queue)
	<-o.emitted
	o.workers.Wait()
	err := context.Cause(o.ctx)
	o.cancel(nil)
	return err
}

// Abort cancels the pool with err and waits for it to stop.
func (o *Ordered[T]) Abort(err error) error {
	o.cancel(err)
	return o.Close()
}
