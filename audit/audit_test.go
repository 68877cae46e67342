package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func event(i int) Event {
	return Event{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600)), RequestID: "r" + string(rune('a'+i)),
		Node: "a1", Zone: "zone-a", Method: "POST", Route: "/v1/keys/:id/rotate", KeyID: "k1",
		Organization: "o1", TokenID: "t1", Role: "key-admin", Operation: "rotate-key", KeyVersion: 3,
		Status: 409, Outcome: OutcomeOf(409), Code: "invalid_state", Source: "10.0.0.9", Duration: 1500 * time.Microsecond,
	}
}

func TestJSONSink_OneLinePerEvent(t *testing.T) {
	var buf bytes.Buffer
	s := NewJSONSink(&buf)
	if err := s.Record(event(0)); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(buf.String(), "\n")
	if strings.Contains(line, "\n") || !strings.HasSuffix(buf.String(), "\n") {
		t.Fatalf("want exactly one line, got %q", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"time": "2026-01-02T02:04:05.000006Z", "request_id": "ra", "node": "a1", "zone": "zone-a", "method": "POST",
		"route": "/v1/keys/:id/rotate", "key_id": "k1", "status": 409.0, "outcome": "refused", "code": "invalid_state",
		"source": "10.0.0.9", "duration_ms": 1.5, "organization": "o1", "token_id": "t1", "role": "key-admin",
		"operation": "rotate-key", "key_version": 3.0,
	}
	if len(got) != len(want) {
		t.Errorf("fields: got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}

func TestJSONSink_ConcurrentLinesDoNotInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := s.Record(event(i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("got %d lines, want 400", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("not one JSON object: %q", l)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v, %v; want 0600", fi.Mode(), err)
	}
	// Open appends: a restarted node keeps the earlier lines.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Record(event(0))
	s.Close()
	if b2, _ := os.ReadFile(path); !bytes.HasPrefix(b2, b) || len(b2) <= len(b) {
		t.Error("Open truncated the existing log")
	}
}

func TestOpen_Errors(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\"): want an error")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "audit.log")); err == nil {
		t.Error("Open in a missing directory: want an error")
	}
	s, err := Open("-")
	if err != nil || s.Close() != nil {
		t.Errorf("Open(-): %v", err)
	}
}

func TestOutcomeOf(t *testing.T) {
	for status, want := range map[int]string{200: OutcomeSuccess, 204: OutcomeSuccess, 307: OutcomeSuccess,
		400: OutcomeRefused, 401: OutcomeDenied, 403: OutcomeDenied, 404: OutcomeRefused, 409: OutcomeRefused,
		499: OutcomeRefused, 500: OutcomeFailed, 503: OutcomeFailed} {
		if got := OutcomeOf(status); got != want {
			t.Errorf("OutcomeOf(%d): got %s, want %s", status, got, want)
		}
	}
}

func TestLogSink(t *testing.T) {
	var buf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Name: "node", Output: &buf, JSONFormat: true})
	if err := NewLogSink(logger).Record(event(1)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if got["@module"] != "node.audit" || got["@message"] != "call" || got["key_id"] != "k1" ||
		got["route"] != "/v1/keys/:id/rotate" || got["outcome"] != "refused" || got["request_id"] != "rb" {
		t.Errorf("log line: got %v", got)
	}
	if _, ok := got["peer_id"]; ok {
		t.Error("empty peer_id logged")
	}
}

// failingWriter refuses every write, like a full disk.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestJSONSinkHealth(t *testing.T) {
	var w switchWriter
	s := NewJSONSink(&w)
	if err := s.Healthy(); err != nil {
		t.Fatalf("new sink: %v", err)
	}
	w.fail = true
	if err := s.Record(event(1)); err == nil {
		t.Fatal("write to a failing writer succeeded")
	}
	if err := s.Healthy(); err == nil {
		t.Fatal("sink healthy after a failed write")
	}
	w.fail = false
	if err := s.Record(event(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("sink not healthy after a good write: %v", err)
	}
}

type switchWriter struct {
	fail bool
	bytes.Buffer
}

func (w *switchWriter) Write(b []byte) (int, error) {
	if w.fail {
		return 0, errors.New("no space left on device")
	}
	return w.Buffer.Write(b)
}

func TestMulti(t *testing.T) {
	var good bytes.Buffer
	bad := NewJSONSink(failingWriter{})
	m := Multi{bad, NewJSONSink(&good)}
	if err := m.Record(event(1)); err != nil {
		t.Fatalf("one sink took the event, yet: %v", err)
	}
	if !strings.Contains(good.String(), `"request_id":"rb"`) {
		t.Errorf("good sink got %q", good.String())
	}
	if err := m.Healthy(); err != nil {
		t.Errorf("healthy while one sink is: %v", err)
	}
	all := Multi{bad, NewJSONSink(failingWriter{})}
	if err := all.Record(event(1)); err == nil {
		t.Fatal("no sink took the event, yet no error")
	}
	if err := all.Healthy(); err == nil {
		t.Fatal("healthy while no sink is")
	}
}
