package api_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
)

func TestHealth_StatusAndReasons(t *testing.T) {
	tests := []struct {
		name    string
		health  cluster.Health
		code    int
		status  string
		reasons []string
	}{
		{"ready", cluster.Health{Live: true, Ready: true, NodeID: "a1", Zone: "zone-a", State: "leader", Leader: "a1"},
			http.StatusOK, wire.HealthReady, nil},
		{"degraded", cluster.Health{Live: true, Ready: true, Degraded: true,
			Reasons: []string{"voter a3 is unreachable: not in the gossip pool", "zone zone-b lags"}},
			http.StatusOK, wire.HealthDegraded, []string{"voter a3 is unreachable: not in the gossip pool", "zone zone-b lags"}},
		{"not ready", cluster.Health{Live: true, Reason: "no known leader", Reasons: []string{"no known leader"}},
			http.StatusServiceUnavailable, wire.HealthNotReady, []string{"no known leader"}},
		// A service that only sets Reason still gets Reasons filled in.
		{"reason only", cluster.Health{Live: true, Reason: "leader is catching up"},
			http.StatusServiceUnavailable, wire.HealthNotReady, []string{"leader is catching up"}},
		{"shutting down", cluster.Health{Reason: "shutting down"},
			http.StatusServiceUnavailable, wire.HealthNotReady, []string{"shutting down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.cluster.HealthResult = tt.health
			rec := e.do(t, "GET", "/v1/health", "", "Authorization", "")
			if rec.Code != tt.code {
				t.Fatalf("status: got %d %s, want %d", rec.Code, rec.Body, tt.code)
			}
			h := decode[wire.Health](t, rec)
			if h.Status != tt.status || h.Ready != tt.health.Ready || h.Degraded != tt.health.Degraded || h.Live != tt.health.Live {
				t.Errorf("body: got %+v, want status %s", h, tt.status)
			}
			if !slices.Equal(h.Reasons, tt.reasons) {
				t.Errorf("reasons: got %q, want %q", h.Reasons, tt.reasons)
			}
			if len(tt.reasons) > 0 && h.Reason != tt.reasons[0] {
				t.Errorf("reason: got %q, want %q", h.Reason, tt.reasons[0])
			}
			if h.NodeID != tt.health.NodeID || h.RaftState != tt.health.State || h.Leader != tt.health.Leader {
				t.Errorf("identity: got %+v", h)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q", got)
			}
		})
	}
}

// The liveness probe answers 200 whatever the zone's state: an
// orchestrator must not restart a node that is only catching up.
func TestHealth_Live(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.NodeID, c.Zone = "a2", "zone-a" })
	e.cluster.HealthResult = cluster.Health{Live: true, Reason: "no known leader"}
	rec := e.do(t, "GET", "/v1/health/live", "", "Authorization", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("live: got %d %s", rec.Code, rec.Body)
	}
	h := decode[wire.Health](t, rec)
	if h.Status != wire.HealthLive || !h.Live || h.NodeID != "a2" || h.Zone != "zone-a" {
		t.Errorf("live: got %+v", h)
	}
	if rec := e.do(t, "POST", "/v1/health/live", "", "Authorization", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST live: got %d, want 405", rec.Code)
	}
}
