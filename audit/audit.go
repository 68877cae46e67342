// Package audit records the administrative calls made to a node: one
// structured event per call, written as one JSON line to a file or
// stdout, or to the node's own log under the name "audit".
//
// An event says who asked what of which node and how it ended (route
// pattern, the key or peer the route names, status, source address,
// duration); never a request or response body, a header, a token or key
// material. The API builds events (api/audit.go); a Sink only stores
// them, so sinks can be added (a remote collector, a hash chain) and a
// caller that must not act unaudited can fail closed on Record's error.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Outcomes of an audited call, from its HTTP status.
const (
	OutcomeSuccess = "success" // 1xx-3xx
	OutcomeDenied  = "denied"  // 401, 403: no or a wrong token
	OutcomeRefused = "refused" // other 4xx: the request was wrong or the state forbids it
	OutcomeFailed  = "failed"  // 5xx: the node could not carry it out
)

// Event is one audited call.
type Event struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Node      string    `json:"node"`
	Zone      string    `json:"zone"`
	Method    string    `json:"method"`
	// Route is the route pattern (/v1/keys/:id/rotate), never the raw
	// path or query.
	Route string `json:"route"`
	// KeyID, PeerID and TargetZone are set when the route names a key, a
	// voter of the zone or another zone.
	KeyID      string `json:"key_id,omitempty"`
	PeerID     string `json:"peer_id,omitempty"`
	TargetZone string `json:"target_zone,omitempty"`
	Status     int    `json:"status"`
	Outcome    string `json:"outcome"`
	// Code is the stable error code of a refused or failed call.
	Code string `json:"code,omitempty"`
	// Source is the address of the TCP peer that sent the call (a proxy's
	// address when the call went through one).
	Source   string        `json:"source"`
	Duration time.Duration `json:"-"`
}

// MarshalJSON writes the duration in milliseconds and the time in UTC.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		Time string `json:"time"`
		plain
		DurationMS float64 `json:"duration_ms"`
	}{e.Time.UTC().Format(time.RFC3339Nano), plain(e), float64(e.Duration.Microseconds()) / 1000})
}

// OutcomeOf classifies an HTTP status.
func OutcomeOf(status int) string {
	switch {
	case status == 401 || status == 403:
		return OutcomeDenied
	case status >= 500:
		return OutcomeFailed
	case status >= 400:
		return OutcomeRefused
	default:
		return OutcomeSuccess
	}
}

// Sink stores audit events. Record must be safe for concurrent use. An
// error means the event may not have been stored.
type Sink interface {
	Record(Event) error
}

// JSONSink writes each event as one JSON line.
type JSONSink struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
}

// NewJSONSink writes events to w, one JSON object per line. Writes are
// serialized, so lines never interleave.
func NewJSONSink(w io.Writer) *JSONSink { return &JSONSink{w: w} }

// Open returns the sink of `keyzone server --audit-log PATH`: "-" is
// stdout; any other path is a file opened for appending (created 0600:
// the log names keys and callers' addresses). Lines reach the OS at once
// (no buffering in the process); they are not fsynced one by one.
func Open(path string) (*JSONSink, error) {
	if path == "" {
		return nil, errors.New("audit log: empty path")
	}
	if path == "-" {
		return NewJSONSink(os.Stdout), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &JSONSink{w: f, closer: f}, nil
}

// Record writes e as one line.
func (s *JSONSink) Record(e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode event: %w", err)
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("audit: write event: %w", err)
	}
	return nil
}

// Close closes the file Open opened; it does not close stdout or a
// writer given to NewJSONSink.
func (s *JSONSink) Close() error {
	if s.closer == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closer.Close()
}

// LogSink writes events to a logger named "audit", at Info, one line per
// event with the event's fields as key/value pairs: with `--log-json`, a
// JSON line.
type LogSink struct{ logger hclog.Logger }

// NewLogSink returns a sink logging to logger.Named("audit").
func NewLogSink(logger hclog.Logger) *LogSink {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &LogSink{logger: logger.Named("audit")}
}

// Record logs e.
func (s *LogSink) Record(e Event) error {
	args := []any{
		"time", e.Time.UTC().Format(time.RFC3339Nano), "request_id", e.RequestID, "node", e.Node, "zone", e.Zone,
		"method", e.Method, "route", e.Route,
	}
	for _, kv := range [][2]string{{"key_id", e.KeyID}, {"peer_id", e.PeerID}, {"target_zone", e.TargetZone}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	args = append(args, "status", e.Status, "outcome", e.Outcome)
	if e.Code != "" {
		args = append(args, "code", e.Code)
	}
	args = append(args, "source", e.Source, "duration_ms", float64(e.Duration.Microseconds())/1000)
	s.logger.Info("admin call", args...)
	return nil
}
