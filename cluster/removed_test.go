package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/keyzone/keyzone/fsm"
)

func removeNodeCommand(t *testing.T, id, zone string) fsm.Command {
	t.Helper()
	cmd, err := fsm.NewCommand(fsm.CmdRemoveNode, fsm.RemoveNodeV1{NodeID: id, Zone: zone, RemovedAt: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// record commits the removal of id through n and returns its index. A
// record is idempotent, so one whose outcome a leader change (frequent on
// a loaded machine with test timeouts) made unknown is proposed again.
func record(t *testing.T, ctx context.Context, n *Node, id string) uint64 {
	t.Helper()
	for attempt := 1; ; attempt++ {
		_, idx, err := n.Propose(ctx, removeNodeCommand(t, id, "zone-t"))
		if err == nil {
			return idx
		}
		if attempt == 5 || !(errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrTimeout)) {
			t.Fatalf("record the removal of %s through %s: %v", id, n.ID(), err)
		}
	}
}

func isVoter(t *testing.T, n *Node, id string) bool {
	t.Helper()
	voters, err := n.voters()
	if err != nil {
		t.Fatalf("voters of %s: %v", n.ID(), err)
	}
	_, ok := voters[raft.ServerID(id)]
	return ok
}

// TestRemoved_RecordedVoterStays: an id in the removed set that is still
// a voter (a removal whose RemoveServer a leader change cut short, or a
// state restored from a backup that names a current voter) is left alone:
// the node keeps serving, peers do not call it removed, the leader keeps
// it. Asking for the removal again finishes it: the node then learns it,
// stops its Raft and says why.
func TestRemoved_RecordedVoterStays(t *testing.T) {
	t.Parallel()
	nodes := startZone(t, 3, nil)
	leader := waitLeader(t, nodes)
	var victim *Node
	for _, n := range nodes {
		if n != leader {
			victim = n
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	idx := record(t, ctx, victim, victim.ID())
	if err := victim.WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	if r, ok := victim.findRemoval(true); ok {
		t.Fatalf("a voter whose id is in the set calls itself removed: %+v", r)
	}
	if !isVoter(t, leader, victim.ID()) {
		t.Fatal("the leader removed a voter on the strength of the set alone")
	}
	waitFor(t, 10*time.Second, "the voter in the set to be ready", func() bool {
		return victim.Health(ctx).Ready
	})

	if err := leader.RemovePeer(ctx, victim.ID()); err != nil {
		t.Fatalf("remove %s: %v", victim.ID(), err)
	}
	waitFor(t, 10*time.Second, "the removed node to refuse", func() bool {
		_, ok := victim.Removed()
		return ok
	})
	h := victim.Health(ctx)
	want := "node " + victim.ID() + " was removed from zone-t at "
	if h.Ready || !h.Live || !strings.HasPrefix(h.Reason, want) || !strings.Contains(h.Reason, "new node id") {
		t.Errorf("health of the removed node: %+v, want live, not ready, reason %q...", h, want)
	}
	if st := victim.Raft().State(); st != raft.Shutdown {
		t.Errorf("raft state of the removed node: %s, want Shutdown", st)
	}
	if isVoter(t, leader, victim.ID()) {
		t.Error("the removed node is still a voter")
	}
	// The zone goes on with two voters; removing the id again succeeds.
	if err := leader.RemovePeer(ctx, victim.ID()); err != nil {
		t.Errorf("remove the removed node again: %v", err)
	}
	record(t, ctx, leader, "third")
}

// TestRemoved_InternalRoute: a node answers whether an id is in its
// removed set, with the record, and refuses a question without an id.
func TestRemoved_InternalRoute(t *testing.T) {
	t.Parallel()
	nodes := startZone(t, 1, nil)
	leader := waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	record(t, ctx, leader, "gone")
	ask := func(query string) (int, removedNodeResponse) {
		req := httptest.NewRequest(http.MethodGet, internalRemovedNode+query, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		leader.InternalHandler().ServeHTTP(rec, req)
		var out removedNodeResponse
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("answer to %s: %v", query, err)
			}
		}
		return rec.Code, out
	}
	if code, out := ask("?id=gone"); code != http.StatusOK || out.Removed == nil || out.Removed.NodeID != "gone" || out.Removed.Zone != "zone-t" {
		t.Errorf("removed id: got %d %+v", code, out.Removed)
	}
	if code, out := ask("?id=node1"); code != http.StatusOK || out.Removed != nil {
		t.Errorf("live id: got %d %+v, want 200 without a record", code, out.Removed)
	}
	// In the set but a voter: not removed.
	record(t, ctx, leader, "node1")
	if code, out := ask("?id=node1"); code != http.StatusOK || out.Removed != nil {
		t.Errorf("voter in the set: got %d %+v, want 200 without a record", code, out.Removed)
	}
	if code, _ := ask(""); code != http.StatusBadRequest {
		t.Errorf("no id: got %d, want 400", code)
	}
	if _, ok := leader.Removed(); ok {
		t.Error("a node that was not removed reports a removal")
	}
	if h := leader.Health(ctx); strings.Contains(h.Reason, "removed") {
		t.Errorf("health of a live node mentions a removal: %+v", h)
	}
}
