package audit

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkJSONSink_File: what one audit record costs a request (encoding
// and one write to a file).
func BenchmarkJSONSink_File(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := Event{Time: time.Now(), RequestID: "abc-123", Node: "a1", Zone: "zone-a", Method: "POST", Organization: "7118a761787f0148",
		TokenID: "0b2e13fe433fb596", Role: "crypto-user", Operation: "encrypt", Route: "/v1/keys/:id/encrypt",
		KeyID: "91c07915-fd6a-4e78-9ff8-c7b8115c10e8", KeyVersion: 1, Status: 200, Outcome: "success", Source: "127.0.0.1", Duration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Record(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueue_Defer: what a deferred record costs a request when 8
// callers per CPU defer records to a file (encoding and a share of one
// write per batch), beside BenchmarkJSONSink_File.
func BenchmarkQueue_Defer(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q := NewQueue(s, QueueOptions{})
	defer q.Flush()
	e := event(0)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q.Defer(e)
		}
	})
}

// BenchmarkJSONSink_FileParallel: BenchmarkJSONSink_File with the same
// callers as BenchmarkQueue_Defer.
func BenchmarkJSONSink_FileParallel(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := event(0)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Record(e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
