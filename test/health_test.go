package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
	"github.com/keyzone/keyzone/test/clustertest"
)

// getHealth asks a node GET path (no token) and returns the status code
// and the body; a node that does not answer gives code 0.
func getHealth(t *testing.T, addr, path string) (int, wire.Health) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(addr + path)
	if err != nil {
		return 0, wire.Health{}
	}
	defer resp.Body.Close()
	var h wire.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("%s%s: %v", addr, path, err)
	}
	return resp.StatusCode, h
}

// waitHealth waits until every node answers GET /v1/health with code and
// a body cond accepts, and returns the last bodies.
func waitHealth(t *testing.T, what string, nodes []*clustertest.Node, code int, cond func(wire.Health) bool) map[string]wire.Health {
	t.Helper()
	last := map[string]wire.Health{}
	clustertest.WaitFor(t, 30*time.Second, what, func() bool {
		for _, n := range nodes {
			got, h := getHealth(t, n.Addr(), "/v1/health")
			last[n.ID] = h
			if got != code || !cond(h) {
				return false
			}
		}
		return true
	})
	return last
}

func running(c *clustertest.Cluster) []*clustertest.Node {
	var out []*clustertest.Node
	for _, n := range c.Nodes {
		if n.Server() != nil {
			out = append(out, n)
		}
	}
	return out
}

func hasReason(h wire.Health, sub string) bool {
	return slices.ContainsFunc(h.Reasons, func(r string) bool { return strings.Contains(r, sub) })
}

// A stopped voter leaves its zone serving, degraded: every other node
// says so, naming it, with 200; the zone is ready again, not degraded,
// once it is back.
func TestHealth_StoppedVoterDegradesItsZone(t *testing.T) {
	z := clustertest.New(t, 3, clustertest.Options{Zone: "health-stop"})
	healthy := func(h wire.Health) bool { return h.Status == wire.HealthReady && h.Ready && !h.Degraded }
	waitHealth(t, "every node ready and not degraded", z.Nodes, http.StatusOK, healthy)

	stopped := z.Followers()[0]
	z.Stop(stopped)
	last := waitHealth(t, "the others degraded, naming "+stopped.ID, running(z), http.StatusOK, func(h wire.Health) bool {
		return h.Status == wire.HealthDegraded && h.Ready && h.Degraded && hasReason(h, "voter "+stopped.ID+" is unreachable")
	})
	for id, h := range last {
		t.Logf("%s: %s %q", id, h.Status, h.Reasons)
	}
	// The zone still takes writes with two voters of three.
	if _, err := z.Leader().Server().Keys().CreateKey(testCtx(t, 30*time.Second), keys.CreateParams{Organization: z.Org.ID, Name: "while-degraded"}); err != nil {
		t.Fatalf("write while degraded: %v", err)
	}

	z.Restart(stopped)
	waitHealth(t, "every node ready and not degraded again", z.Nodes, http.StatusOK, healthy)
}

// A node that can't reach a leader is not ready (503, with the reason)
// but live; it is ready again once its zone has a quorum.
func TestHealth_NodeCutOffFromItsLeaderIsNotReady(t *testing.T) {
	z := clustertest.New(t, 3, clustertest.Options{Zone: "health-cut"})
	leader := z.Leader()
	var alone *clustertest.Node
	for _, n := range z.Followers() {
		if alone == nil {
			alone = n
			continue
		}
		z.Stop(n)
	}
	z.Stop(leader)

	last := waitHealth(t, alone.ID+" not ready", []*clustertest.Node{alone}, http.StatusServiceUnavailable, func(h wire.Health) bool {
		return h.Status == wire.HealthNotReady && h.Live && !h.Ready && len(h.Reasons) > 0 && h.Reason == h.Reasons[0]
	})
	reason := last[alone.ID].Reason
	if !strings.Contains(reason, "leader") && !strings.Contains(reason, "election") {
		t.Errorf("reason: got %q, want one about the leader", reason)
	}
	t.Logf("%s: %q", alone.ID, last[alone.ID].Reasons)
	code, h := getHealth(t, alone.Addr(), "/v1/health/live")
	if code != http.StatusOK || h.Status != wire.HealthLive || h.NodeID != alone.ID {
		t.Errorf("liveness of a node without leader: got %d %+v, want 200 live", code, h)
	}

	for _, n := range z.Nodes {
		if n != alone {
			z.Restart(n)
		}
	}
	waitHealth(t, "every node ready again", z.Nodes, http.StatusOK, func(h wire.Health) bool { return h.Ready })
}

// A remote zone that does not acknowledge this zone's changes for longer
// than the threshold makes this zone degraded, naming it; the zone is
// healthy again once the remote zone has caught up.
func TestHealth_LaggingZoneDegrades(t *testing.T) {
	const threshold = 2 * time.Second
	names := []string{"hlag-a", "hlag-b"}
	zones := clustertest.NewZones(t, 1, names, clustertest.Options{
		Server: func(c *server.Config) { c.Cluster.ReplicationLagThreshold = threshold },
	})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 60*time.Second)
	org := a.Org.ID
	svc := a.Leader().Server().Keys()
	k, err := svc.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "lagging", ReplicaZones: []string{"hlag-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	healthy := func(h wire.Health) bool { return h.Status == wire.HealthReady && !h.Degraded }
	waitHealth(t, "zone hlag-a healthy", a.Nodes, http.StatusOK, healthy)

	b.Shutdown()
	if _, err := svc.UpdateKey(ctx, keys.UpdateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}, Description: ptr("unacknowledged")}); err != nil {
		t.Fatal(err)
	}
	last := waitHealth(t, "zone hlag-a degraded by hlag-b's lag", a.Nodes, http.StatusOK, func(h wire.Health) bool {
		return h.Ready && h.Degraded && hasReason(h, "zone hlag-b lags")
	})
	t.Logf("%q", last[a.Nodes[0].ID].Reasons)
	if want := fmt.Sprintf("(threshold %s)", threshold); !hasReason(last[a.Nodes[0].ID], want) {
		t.Errorf("reasons %q do not give the threshold", last[a.Nodes[0].ID].Reasons)
	}

	for _, n := range b.Nodes {
		b.Restart(n)
	}
	waitConverged(t, zones, a, k.ID)
	waitHealth(t, "zone hlag-a healthy once hlag-b caught up", a.Nodes, http.StatusOK, healthy)
}
