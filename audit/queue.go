package audit

import (
	"sync"
	"time"
)

// BatchSink is a sink that stores several events at once: JSONSink
// writes a batch with one system call.
type BatchSink interface {
	Sink
	// RecordBatch stores the events in order; an error means any of
	// them may not have been stored.
	RecordBatch([]Event) error
}

// Queue defaults.
const (
	// DefaultQueueDelay bounds how long a deferred event waits in memory
	// before its batch is written: the events a crash can lose are those
	// of about this last stretch of time.
	DefaultQueueDelay = time.Millisecond
	// DefaultQueueMax is the number of waiting events at which the caller
	// that adds one writes the batch itself instead of returning: a
	// stalled destination slows callers down instead of growing memory.
	DefaultQueueMax = 1024
)

// QueueOptions shape a Queue.
type QueueOptions struct {
	// Delay is the longest a deferred event waits before its batch is
	// written (0: DefaultQueueDelay).
	Delay time.Duration
	// Max is the number of waiting events at which Defer writes them
	// itself (0: DefaultQueueMax).
	Max int
	// OnDrop is called, from whichever goroutine wrote the batch, for
	// each deferred event that the sink did not store, with the sink's
	// error; Record returns its own event's error instead.
	OnDrop func(Event, error)
}

// Queue writes events to a sink in batches. Record writes at once,
// together with what waits, and returns the sink's answer: for calls
// that must not go unaudited. Defer only queues the event; the batch is
// written within the queue's delay, by a timer, or by the caller that
// fills the queue. Batching turns one write system call per event into
// one per batch, off the caller's path; the price is that a crash loses
// the deferred events of the last delay.
//
// A Queue has no goroutine of its own between batches: a dropped Queue
// leaks nothing, but its waiting events are lost unless Flush is called.
type Queue struct {
	sink   Sink
	max    int
	delay  time.Duration
	onDrop func(Event, error)
	timer  *time.Timer // fires flushDeferred once armed

	mu      sync.Mutex
	pending []Event
	spare   []Event // the last batch's array, cleared, for the next one
	armed   bool    // timer is set to fire

	// writeMu orders batches: events reach the sink in the order they
	// were queued.
	writeMu sync.Mutex
}

// NewQueue returns a queue in front of sink.
func NewQueue(sink Sink, opts QueueOptions) *Queue {
	q := &Queue{sink: sink, max: opts.Max, delay: opts.Delay, onDrop: opts.OnDrop}
	if q.max <= 0 {
		q.max = DefaultQueueMax
	}
	if q.delay <= 0 {
		q.delay = DefaultQueueDelay
	}
	if q.onDrop == nil {
		q.onDrop = func(Event, error) {}
	}
	q.timer = time.AfterFunc(time.Hour, q.flushDeferred)
	q.timer.Stop()
	return q
}

// Defer queues e. It returns at once unless the queue is full, in which
// case it writes the waiting events itself.
func (q *Queue) Defer(e Event) {
	q.mu.Lock()
	q.pending = append(q.pending, e)
	full := len(q.pending) >= q.max
	if !full && !q.armed {
		q.armed = true
		q.timer.Reset(q.delay)
	}
	q.mu.Unlock()
	if full {
		q.flush(nil)
	}
}

// Record writes the waiting events and e, and returns whether the sink
// stored e.
func (q *Queue) Record(e Event) error {
	return q.flush(&e)
}

// Flush writes the waiting events now: before the process exits.
func (q *Queue) Flush() {
	q.flush(nil)
}

// Healthy reports the sink's health, when it knows it.
func (q *Queue) Healthy() error {
	if h, ok := q.sink.(HealthReporter); ok {
		return h.Healthy()
	}
	return nil
}

func (q *Queue) flushDeferred() {
	q.mu.Lock()
	q.armed = false
	q.mu.Unlock()
	q.flush(nil)
}

// flush writes the waiting events, then last when it is not nil, and
// returns the error that concerns last.
func (q *Queue) flush(last *Event) error {
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	q.mu.Lock()
	batch := q.pending
	q.pending = q.spare[:0]
	q.spare = nil
	q.mu.Unlock()

	deferred := len(batch)
	if last != nil {
		batch = append(batch, *last)
	}
	var lastErr error
	report := func(i int, err error) {
		if i < deferred {
			q.onDrop(batch[i], err)
		} else {
			lastErr = err
		}
	}
	if bs, ok := q.sink.(BatchSink); ok && len(batch) > 0 {
		if err := bs.RecordBatch(batch); err != nil {
			for i := range batch {
				report(i, err)
			}
		}
	} else {
		for i, e := range batch {
			if err := q.sink.Record(e); err != nil {
				report(i, err)
			}
		}
	}

	clear(batch) // the events hold request strings: don't keep them alive
	q.mu.Lock()
	if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
	return lastErr
}
