// Package audit records the calls made to a node: one structured event
// per request, written as one JSON line to files or stdout, or to the
// node's own log under the name "audit".
//
// An event says who asked what of which node and how it ended (route
// pattern, the key or peer the route names, status, source address,
// duration); never a request or response body, a header, a token or key
// material. The API builds events (api/audit.go); a Sink only stores
// them, so sinks can be added (a remote collector, a hash chain) and a
// caller that must not act unaudited can fail closed on Record's error.
package audit

import (
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
	// Organization, TokenID and Role say who called: the organization's
	// id, the token's id (never its secret) and role; Role is "operator"
	// for the cluster operator's token. Empty when no token was valid.
	Organization string `json:"organization,omitempty"`
	TokenID      string `json:"token_id,omitempty"`
	Role         string `json:"role,omitempty"`
	// Operation names what was asked (encrypt, rotate-key, create-token).
	Operation string `json:"operation"`
	// Route is the route pattern (/v1/keys/:id/rotate), never the raw
	// path or query.
	Route string `json:"route"`
	// KeyID, PeerID and TargetZone are set when the route names a key, a
	// voter of the zone or another zone.
	KeyID string `json:"key_id,omitempty"`
	// KeyVersion is the key version a crypto call used, or the current
	// version of the key a lifecycle call returned.
	KeyVersion uint32 `json:"key_version,omitempty"`
	// SubjectTokenID is the token a token route names (the one revoked).
	SubjectTokenID string `json:"subject_token_id,omitempty"`
	PeerID         string `json:"peer_id,omitempty"`
	TargetZone     string `json:"target_zone,omitempty"`
	Status         int    `json:"status"`
	Outcome        string `json:"outcome"`
	// Code is the stable error code of a refused or failed call.
	Code string `json:"code,omitempty"`
	// Source is the address of the TCP peer that sent the call (a proxy's
	// address when the call went through one).
	Source   string        `json:"source"`
	Duration time.Duration `json:"-"`
}

// MarshalJSON writes the duration in milliseconds and the time in UTC
// (see AppendJSON).
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

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

// HealthReporter is a sink that knows whether its last write went
// through. Callers that must not act unaudited (lifecycle and admin
// calls) refuse to start while Healthy returns an error; the next write
// that succeeds (the record of such a refusal, or of any other call)
// makes the sink healthy again.
type HealthReporter interface {
	Healthy() error
}

// health tracks a sink's last write.
type health struct {
	mu   sync.Mutex
	last error
}

func (h *health) set(err error) {
	h.mu.Lock()
	h.last = err
	h.mu.Unlock()
}

func (h *health) Healthy() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// Multi records each event in every sink, and succeeds when at least one
// of them stored it: a file and stdout back each other up.
type Multi []Sink

// Record implements Sink.
func (m Multi) Record(e Event) error { return m.RecordBatch([]Event{e}) }

// RecordBatch stores the events in every sink, and succeeds when at
// least one of them stored them all.
func (m Multi) RecordBatch(events []Event) error {
	var errs []error
	for i, s := range m {
		err := recordBatch(s, events)
		if err == nil {
			for _, rest := range m[i+1:] {
				_ = recordBatch(rest, events)
			}
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recordBatch stores events in s, in one call when s takes batches; the
// error is the first one s returned.
func recordBatch(s Sink, events []Event) error {
	if bs, ok := s.(BatchSink); ok {
		return bs.RecordBatch(events)
	}
	var first error
	for _, e := range events {
		if err := s.Record(e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Healthy reports an error only when no sink is healthy.
func (m Multi) Healthy() error {
	var errs []error
	for _, s := range m {
		h, ok := s.(HealthReporter)
		if !ok {
			return nil
		}
		err := h.Healthy()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// JSONSink writes each event as one JSON line.
type JSONSink struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	buf    []byte // the line being written, reused under mu
	health
}

// NewJSONSink writes events to w, one JSON object per line. Writes are
// serialized, so lines never interleave.
func NewJSONSink(w io.Writer) *JSONSink { return &JSONSink{w: w} }

// Open returns the sink of `keyzone server --audit-log PATH`: "-" is
// stdout; any other path is a file opened for appending (created 0600:
// the log names keys and callers' addresses). Each Record or RecordBatch
// is one write to the OS (no buffering here; a Queue in front batches);
// nothing is fsynced.
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
func (s *JSONSink) Record(e Event) error { return s.RecordBatch([]Event{e}) }

// RecordBatch writes the events as lines with one write.
func (s *JSONSink) RecordBatch(events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf[:0]
	for i := range events {
		b = append(events[i].AppendJSON(b), '\n')
	}
	if cap(b) <= maxKeptBuffer {
		s.buf = b
	}
	if _, err := s.w.Write(b); err != nil {
		err = fmt.Errorf("audit: write: %w", err)
		s.set(err)
		return err
	}
	s.set(nil)
	return nil
}

// maxKeptBuffer bounds the line buffer a JSONSink keeps between writes:
// a burst's batch is not held for the life of the process.
const maxKeptBuffer = 1 << 20

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
		"method", e.Method, "route", e.Route, "operation", e.Operation,
	}
	for _, kv := range [][2]string{{"organization", e.Organization}, {"token_id", e.TokenID}, {"role", e.Role},
		{"key_id", e.KeyID}, {"subject_token_id", e.SubjectTokenID}, {"peer_id", e.PeerID}, {"target_zone", e.TargetZone}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if e.KeyVersion != 0 {
		args = append(args, "key_version", e.KeyVersion)
	}
	args = append(args, "status", e.Status, "outcome", e.Outcome)
	if e.Code != "" {
		args = append(args, "code", e.Code)
	}
	args = append(args, "source", e.Source, "duration_ms", float64(e.Duration.Microseconds())/1000)
	s.logger.Info("call", args...)
	return nil
}
