package audit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeLog is a writer that keeps each Write apart, and can be made to
// fail.
type writeLog struct {
	mu     sync.Mutex
	fail   bool
	writes []string
}

func (w *writeLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("no space left on device")
	}
	w.writes = append(w.writes, string(b))
	return len(b), nil
}

func (w *writeLog) setFail(fail bool) {
	w.mu.Lock()
	w.fail = fail
	w.mu.Unlock()
}

// requestIDs returns the request ids of the lines written, in order, and
// the number of writes.
func (w *writeLog) requestIDs(t *testing.T) ([]string, int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, l := range strings.Split(strings.Join(w.writes, ""), "\n") {
		if l == "" {
			continue
		}
		_, rest, ok := strings.Cut(l, `"request_id":"`)
		id, _, ok2 := strings.Cut(rest, `"`)
		if !ok || !ok2 {
			t.Fatalf("line without a request id: %q", l)
		}
		ids = append(ids, id)
	}
	return ids, len(w.writes)
}

func namedEvent(id string) Event {
	e := event(0)
	e.RequestID = id
	return e
}

// never is a delay no test waits for: only Record, Flush or a full queue
// write.
const never = time.Hour

func TestQueue_DeferredEventsWaitForRecord(t *testing.T) {
	var w writeLog
	q := NewQueue(NewJSONSink(&w), QueueOptions{Delay: never})
	for _, id := range []string{"d1", "d2", "d3"} {
		q.Defer(namedEvent(id))
	}
	if ids, _ := w.requestIDs(t); len(ids) != 0 {
		t.Fatalf("deferred events written before their batch: %q", ids)
	}
	if err := q.Record(namedEvent("change")); err != nil {
		t.Fatal(err)
	}
	ids, writes := w.requestIDs(t)
	if want := "d1 d2 d3 change"; strings.Join(ids, " ") != want || writes != 1 {
		t.Fatalf("after Record: %q in %d writes, want %q in one", ids, writes, want)
	}
	// Nothing waits: a Record alone is one write of one line.
	if err := q.Record(namedEvent("change2")); err != nil {
		t.Fatal(err)
	}
	if ids, writes := w.requestIDs(t); len(ids) != 5 || writes != 2 {
		t.Fatalf("second Record: %q in %d writes", ids, writes)
	}
}

func TestQueue_TimerWritesDeferredEvents(t *testing.T) {
	var w writeLog
	q := NewQueue(NewJSONSink(&w), QueueOptions{Delay: 5 * time.Millisecond})
	for i := range 3 {
		q.Defer(namedEvent(fmt.Sprintf("d%d", i)))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids, writes := w.requestIDs(t)
		if len(ids) == 3 {
			if strings.Join(ids, " ") != "d0 d1 d2" || writes > 3 {
				t.Fatalf("timer wrote %q in %d writes", ids, writes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, %d of 3 deferred events written", len(ids))
		}
		time.Sleep(time.Millisecond)
	}
	// The queue keeps working after its timer fired.
	q.Defer(namedEvent("d3"))
	for {
		if ids, _ := w.requestIDs(t); len(ids) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an event deferred after the first batch was never written")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueue_FullQueueWritesInTheCaller(t *testing.T) {
	var w writeLog
	q := NewQueue(NewJSONSink(&w), QueueOptions{Delay: never, Max: 4})
	for i := range 3 {
		q.Defer(namedEvent(fmt.Sprintf("d%d", i)))
	}
	if ids, _ := w.requestIDs(t); len(ids) != 0 {
		t.Fatalf("written below the queue's bound: %q", ids)
	}
	q.Defer(namedEvent("d3"))
	ids, writes := w.requestIDs(t)
	if strings.Join(ids, " ") != "d0 d1 d2 d3" || writes != 1 {
		t.Fatalf("the event that filled the queue returned with %q written in %d writes", ids, writes)
	}
}

func TestQueue_Flush(t *testing.T) {
	var w writeLog
	q := NewQueue(NewJSONSink(&w), QueueOptions{Delay: never})
	q.Flush() // nothing waits: no write
	q.Defer(namedEvent("d0"))
	q.Flush()
	if ids, writes := w.requestIDs(t); strings.Join(ids, " ") != "d0" || writes != 1 {
		t.Fatalf("after Flush: %q in %d writes", ids, writes)
	}
}

// TestQueue_FailuresAreReported: a deferred event the sink refused goes to
// OnDrop, Record's own event to Record's error, and the sink's health
// shows through the queue.
func TestQueue_FailuresAreReported(t *testing.T) {
	var w writeLog
	var mu sync.Mutex
	var dropped []string
	q := NewQueue(NewJSONSink(&w), QueueOptions{Delay: never, OnDrop: func(e Event, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			t.Error("OnDrop without an error")
		}
		dropped = append(dropped, e.RequestID)
	}})
	w.setFail(true)
	q.Defer(namedEvent("d0"))
	q.Defer(namedEvent("d1"))
	if err := q.Record(namedEvent("change")); err == nil {
		t.Fatal("Record into a failing sink: no error")
	}
	if got := strings.Join(dropped, " "); got != "d0 d1" {
		t.Errorf("dropped: %q, want the two deferred events", got)
	}
	if q.Healthy() == nil {
		t.Error("healthy after a failed write")
	}
	w.setFail(false)
	if err := q.Record(namedEvent("change2")); err != nil {
		t.Fatal(err)
	}
	if err := q.Healthy(); err != nil {
		t.Errorf("not healthy after a good write: %v", err)
	}
}

// oneByOne is a sink that takes no batches and refuses the events whose
// request id starts with "bad".
type oneByOne struct {
	mu  sync.Mutex
	ids []string
}

func (s *oneByOne) Record(e Event) error {
	if strings.HasPrefix(e.RequestID, "bad") {
		return errors.New("refused")
	}
	s.mu.Lock()
	s.ids = append(s.ids, e.RequestID)
	s.mu.Unlock()
	return nil
}

// TestQueue_SinkWithoutBatches: a sink that takes events one at a time
// gets them in order, and only the events it refused are dropped.
func TestQueue_SinkWithoutBatches(t *testing.T) {
	s := &oneByOne{}
	var dropped []string
	q := NewQueue(s, QueueOptions{Delay: never, OnDrop: func(e Event, _ error) { dropped = append(dropped, e.RequestID) }})
	for _, id := range []string{"d0", "bad1", "d2"} {
		q.Defer(namedEvent(id))
	}
	if err := q.Record(namedEvent("change")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.ids, " "); got != "d0 d2 change" {
		t.Errorf("stored %q", got)
	}
	if got := strings.Join(dropped, " "); got != "bad1" {
		t.Errorf("dropped %q, want bad1", got)
	}
	if err := q.Record(namedEvent("bad-change")); err == nil {
		t.Error("Record of a refused event: no error")
	}
}

// TestQueue_Concurrent: events deferred and recorded from many goroutines
// are each written once, and each goroutine's events in its order.
func TestQueue_Concurrent(t *testing.T) {
	var w writeLog
	q := NewQueue(NewJSONSink(&w), QueueOptions{Delay: 200 * time.Microsecond, Max: 64})
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				e := namedEvent(fmt.Sprintf("g%d-%d", g, i))
				if i%50 == 49 {
					if err := q.Record(e); err != nil {
						t.Error(err)
					}
					continue
				}
				q.Defer(e)
			}
		})
	}
	wg.Wait()
	q.Flush()
	ids, _ := w.requestIDs(t)
	if len(ids) != workers*each {
		t.Fatalf("%d lines, want %d", len(ids), workers*each)
	}
	next := make(map[string]int)
	for _, id := range ids {
		g, i, _ := strings.Cut(id, "-")
		if want := fmt.Sprint(next[g]); i != want {
			t.Fatalf("worker %s: event %s written where %s was due", g, i, want)
		}
		next[g]++
	}
}

func TestMulti_RecordBatch(t *testing.T) {
	var good bytes.Buffer
	m := Multi{NewJSONSink(failingWriter{}), &oneByOne{}, NewJSONSink(&good)}
	if err := m.RecordBatch([]Event{namedEvent("a"), namedEvent("b")}); err != nil {
		t.Fatalf("a sink took the batch, yet: %v", err)
	}
	if n := strings.Count(good.String(), "\n"); n != 2 {
		t.Errorf("the last sink got %d lines, want the whole batch", n)
	}
	all := Multi{NewJSONSink(failingWriter{}), &oneByOne{}}
	if err := all.RecordBatch([]Event{namedEvent("a"), namedEvent("bad")}); err == nil {
		t.Error("no sink took the whole batch, yet no error")
	}
}
