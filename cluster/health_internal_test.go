package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestHealth_Decide(t *testing.T) {
	lim := healthLimits{contact: 1500 * time.Millisecond, appliedLag: 1000, replicationLag: time.Minute}
	// follower is a ready follower of a zone of three, with a remote zone
	// in sync.
	follower := func() healthFacts {
		return healthFacts{
			nodeID: "a2", zone: "zone-a", state: raft.Follower, term: 3, commit: 120, applied: 120,
			leader: "a1", sinceContact: 50 * time.Millisecond,
			askedLeader: true, leaderIndex: 120,
			voters: []voterFacts{{id: "a1", inPool: true, sinceContact: -1}, {id: "a3", inPool: true, sinceContact: -1}},
			zones:  []ZoneStatus{{Name: "zone-a", Local: true}, {Name: "zone-b"}},
		}
	}
	leader := func() healthFacts {
		f := follower()
		f.nodeID, f.state, f.leaderReady, f.askedLeader, f.leaderIndex, f.sinceContact = "a1", raft.Leader, true, false, 0, -1
		f.voters = []voterFacts{{id: "a2", inPool: true, sinceContact: 20 * time.Millisecond}, {id: "a3", inPool: true, sinceContact: -1}}
		return f
	}
	tests := []struct {
		name     string
		facts    func() healthFacts
		live     bool
		ready    bool
		degraded bool
		reasons  []string // substrings, in order
	}{
		{name: "ready follower", facts: follower, live: true, ready: true},
		{name: "ready leader", facts: leader, live: true, ready: true},
		{name: "leader before its barrier", facts: func() healthFacts {
			f := leader()
			f.leaderReady = false
			return f
		}, live: true, reasons: []string{"leader is catching up"}},
		{name: "shut down", facts: func() healthFacts {
			f := follower()
			f.state = raft.Shutdown
			return f
		}, reasons: []string{"shutting down"}},
		{name: "candidate", facts: func() healthFacts {
			f := follower()
			f.state, f.leader = raft.Candidate, ""
			return f
		}, live: true, reasons: []string{"election"}},
		{name: "no leader", facts: func() healthFacts {
			f := follower()
			f.leader = ""
			return f
		}, live: true, reasons: []string{"no known leader"}},
		{name: "never heard from the leader", facts: func() healthFacts {
			f := follower()
			f.sinceContact = -1
			return f
		}, live: true, reasons: []string{"no contact with the leader a1 yet"}},
		{name: "leader silent too long", facts: func() healthFacts {
			f := follower()
			f.sinceContact = 2 * time.Second
			return f
		}, live: true, reasons: []string{"no contact with the leader a1 for 2s"}},
		{name: "leader does not give its index", facts: func() healthFacts {
			f := follower()
			f.leaderErr = errors.New("connection refused")
			return f
		}, live: true, reasons: []string{"did not give its applied index: connection refused"}},
		{name: "far behind the leader", facts: func() healthFacts {
			f := follower()
			f.applied, f.leaderIndex = 100, 5000
			return f
		}, live: true, reasons: []string{"catching up: applied index 100 is 4900 entries behind the leader's 5000"}},
		{name: "a little behind the leader", facts: func() healthFacts {
			f := follower()
			f.applied, f.leaderIndex = 4000, 5000
			return f
		}, live: true, ready: true},
		{name: "follower sees a voter gone from the pool", facts: func() healthFacts {
			f := follower()
			f.voters[1].inPool = false
			return f
		}, live: true, ready: true, degraded: true, reasons: []string{"voter a3 is unreachable: not in the gossip pool"}},
		{name: "leader without answers from a voter", facts: func() healthFacts {
			f := leader()
			f.voters[0].sinceContact = 4 * time.Second
			return f
		}, live: true, ready: true, degraded: true, reasons: []string{"voter a2 is unreachable: no answer to the leader for 4s"}},
		{name: "remote zone lagging", facts: func() healthFacts {
			f := follower()
			f.zones[1].LagSeconds, f.zones[1].LagEntries = 75, 3
			return f
		}, live: true, ready: true, degraded: true, reasons: []string{"zone zone-b lags: 3 changes of this zone unacknowledged, the oldest for 1m15s (threshold 1m0s)"}},
		{name: "remote zone behind but within the threshold", facts: func() healthFacts {
			f := follower()
			f.zones[1].LagSeconds, f.zones[1].LagEntries = 30, 3
			return f
		}, live: true, ready: true},
		{name: "every degraded reason, voters first", facts: func() healthFacts {
			f := leader()
			f.voters[1].inPool = false
			f.zones[1].LagSeconds, f.zones[1].LagEntries = 120, 1
			return f
		}, live: true, ready: true, degraded: true, reasons: []string{"voter a3", "zone zone-b lags"}},
		{name: "not ready hides degraded reasons", facts: func() healthFacts {
			f := follower()
			f.leader = ""
			f.voters[1].inPool = false
			return f
		}, live: true, reasons: []string{"no known leader"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.facts()
			h := f.decide(lim)
			if h.Live != tt.live || h.Ready != tt.ready || h.Degraded != tt.degraded {
				t.Errorf("got live=%t ready=%t degraded=%t, want %t %t %t (reasons %q)",
					h.Live, h.Ready, h.Degraded, tt.live, tt.ready, tt.degraded, h.Reasons)
			}
			if len(h.Reasons) != len(tt.reasons) {
				t.Fatalf("reasons: got %q, want %d matching %q", h.Reasons, len(tt.reasons), tt.reasons)
			}
			for i, want := range tt.reasons {
				if !strings.Contains(h.Reasons[i], want) {
					t.Errorf("reason %d: got %q, want it to contain %q", i, h.Reasons[i], want)
				}
			}
			if len(h.Reasons) > 0 && h.Reason != h.Reasons[0] {
				t.Errorf("Reason %q is not the first of Reasons %q", h.Reason, h.Reasons)
			}
			if h.NodeID != f.nodeID || h.Zone != "zone-a" || h.State != strings.ToLower(f.state.String()) {
				t.Errorf("identity: got %s/%s/%s", h.NodeID, h.Zone, h.State)
			}
		})
	}
}

// A follower asks its leader only once the local checks pass, so one
// without a leader answers without a network call.
func TestHealth_AsksLeaderOnlyWhenNeeded(t *testing.T) {
	lim := healthLimits{contact: time.Second}
	tests := []struct {
		name  string
		facts healthFacts
		want  bool
	}{
		{"follower in contact", healthFacts{state: raft.Follower, leader: "a1", sinceContact: 10 * time.Millisecond}, true},
		{"leader", healthFacts{state: raft.Leader, leader: "a1", sinceContact: -1}, false},
		{"no leader", healthFacts{state: raft.Follower, sinceContact: 10 * time.Millisecond}, false},
		{"stale contact", healthFacts{state: raft.Follower, leader: "a1", sinceContact: 2 * time.Second}, false},
		{"never heard", healthFacts{state: raft.Follower, leader: "a1", sinceContact: -1}, false},
	}
	for _, tt := range tests {
		if got := tt.facts.needsLeaderIndex(lim); got != tt.want {
			t.Errorf("%s: got %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestRaftTelemetry_RecordsPeerContactAndSnapshots(t *testing.T) {
	tel := newRaftTelemetry()
	before := time.Now()
	tel.AddSampleWithLabels([]string{"raft", "replication", "heartbeat"}, 1.5, []metrics.Label{{Name: "peer_id", Value: "p1"}})
	tel.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 2, []metrics.Label{{Name: "peer_id", Value: "p2"}})
	// Samples of other keys, or without a peer, are ignored.
	tel.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 2, []metrics.Label{{Name: "peer_id", Value: "p3"}})
	tel.AddSample([]string{"raft", "replication", "heartbeat"}, 1)
	for _, id := range []string{"p1", "p2"} {
		if at, ok := tel.lastContact(id); !ok || at.Before(before) {
			t.Errorf("contact of %s: got %v, %t", id, at, ok)
		}
	}
	if _, ok := tel.lastContact("p3"); ok {
		t.Error("p3: an appendEntries.logs counter sample counted as a contact")
	}
	tel.AddSample([]string{"raft", "snapshot", "persist"}, 250)
	tel.AddSample([]string{"raft", "snapshot", "create"}, 1)
	tel.AddSample([]string{"raft", "fsm", "restore"}, 40)
	if got := histogramCount(t, tel.snapshots); got != 1 {
		t.Errorf("snapshots: got %d samples, want 1", got)
	}
	if got := histogramCount(t, tel.restores); got != 1 {
		t.Errorf("restores: got %d samples, want 1", got)
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
