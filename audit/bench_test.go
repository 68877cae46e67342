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
