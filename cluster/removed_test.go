package cluster

import (
	"context"
	"encoding/json"
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

func isVoter(t *testing.T, n *Node, id string) bool {
	t.Helper()
	voters, err := n.voters()
	if err != nil {
		t.Fatalf("voters of %s: %v", n.ID(), err)
	}
	_, ok := voters[raft.ServerID(id)]
	return ok
}

// TestRemoved_RecordWithoutRemoveServer: a removal recorded in the log
// whose RemoveServer never ran (the leader that recorded it lost its
// leadership in between) is finished by the leader's reconcile loop, and
// the running node, finding its id in its own state, stops taking part
// and says why.
func TestRemoved_RecordWithoutRemoveServer(t *testing.T) {
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
	if _, _, err := victim.Propose(ctx, removeNodeCommand(t, victim.ID(), "zone-t")); err != nil {
		t.Fatalf("record the removal: %v", err)
	}
	waitFor(t, 10*time.Second, "the reconcile loop to remove the recorded voter", func() bool {
		return !isVoter(t, leader, victim.ID())
	})
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
	// The zone goes on with two voters; removing the id again succeeds.
	if err := leader.RemovePeer(ctx, victim.ID()); err != nil {
		t.Errorf("remove the removed node again: %v", err)
	}
	if _, _, err := leader.Propose(ctx, removeNodeCommand(t, "other", "zone-t")); err != nil {
		t.Errorf("propose with two voters: %v", err)
	}
}

// TestRemoved_InternalRoute: a node answers whether an id is in its
// removed set, with the record, and refuses a question without an id.
func TestRemoved_InternalRoute(t *testing.T) {
	t.Parallel()
	nodes := startZone(t, 1, nil)
	leader := waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := leader.Propose(ctx, removeNodeCommand(t, "gone", "zone-t")); err != nil {
		t.Fatal(err)
	}
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
