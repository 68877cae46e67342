package api

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request path pays no allocation for its metrics once a (route,
// method, status) has been seen.
func TestMetrics_ObserveAllocatesNothing(t *testing.T) {
	m, err := newRequestMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.observe("POST", "/v1/keys/:id/encrypt", 200, time.Millisecond) // resolves the children
	allocs := testing.AllocsPerRun(1000, func() {
		m.observe("POST", "/v1/keys/:id/encrypt", 200, time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("observe: got %v allocations per request, want 0", allocs)
	}
}

func TestRequestID_Sanity(t *testing.T) {
	ids := newRequestIDs()
	a, b := ids.next(), ids.next()
	if a == b || !saneToken(a, maxRequestID) || !saneToken(b, maxRequestID) {
		t.Errorf("ids %q, %q: want two distinct sane tokens", a, b)
	}
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"abc-123_X.y:z", true},
		{"", false},
		{"has space", false},
		{"new\nline", false},
		{"quote\"", false},
		{string(make([]byte, 65)), false},
		{"0123456789012345678901234567890123456789012345678901234567890123", true},
		{"01234567890123456789012345678901234567890123456789012345678901234", false},
	} {
		if got := saneToken(tt.in, maxRequestID); got != tt.want {
			t.Errorf("saneToken(%q): got %t, want %t", tt.in, got, tt.want)
		}
	}
}

func BenchmarkMetrics_Observe(b *testing.B) {
	m, err := newRequestMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.observe("POST", "/v1/keys/:id/encrypt", 200, time.Millisecond)
		}
	})
}

func BenchmarkRequestID(b *testing.B) {
	ids := newRequestIDs()
	b.ReportAllocs()
	for b.Loop() {
		_ = ids.next()
	}
}
