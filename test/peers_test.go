package test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// TestPeers_ListsVoters: every node lists the three voters, one leader,
// each with its API address and applied index; the HTTP API says the same.
func TestPeers_ListsVoters(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := membershipCtx(t)
	createKeys(t, ctx, c.Leader(), 2)
	c.WaitReady(10 * time.Second)

	for _, n := range c.Nodes {
		ps, err := n.Server().Node().Peers(ctx)
		if err != nil {
			t.Fatalf("peers on %s: %v", n.ID, err)
		}
		if len(ps) != 3 {
			t.Fatalf("peers on %s: got %d, want 3: %+v", n.ID, len(ps), ps)
		}
		leaders := 0
		for _, p := range ps {
			if p.State == "leader" {
				leaders++
			}
			if p.State == "unreachable" || p.APIAddress == "" || p.AppliedIndex == nil || p.LastContact == nil || *p.AppliedIndex == 0 {
				t.Errorf("peers on %s: incomplete %+v", n.ID, p)
			}
		}
		if leaders != 1 {
			t.Errorf("peers on %s: got %d leaders, want 1", n.ID, leaders)
		}
	}

	cl, err := client.New(c.Nodes[0].Addr(), c.OperatorToken)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.Peers(ctx)
	if err != nil || len(got.Peers) != 3 {
		t.Fatalf("GET /v1/cluster/peers: got %+v, %v", got, err)
	}
	// The cluster is the operator's: an organization's admin is refused.
	orgAdmin, err := client.New(c.Nodes[0].Addr(), c.Token)
	if err != nil {
		t.Fatal(err)
	}
	_, err = orgAdmin.Peers(ctx)
	wantAPIError(t, err, 403, wire.CodeForbidden)
}

// TestPeers_TransferLeadershipUnderWrites: leadership moves to a named
// follower while a goroutine keeps creating keys; the named node leads
// afterwards and every acknowledged key is on every node.
func TestPeers_TransferLeadershipUnderWrites(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := membershipCtx(t)
	leader := c.Leader()
	target := c.Followers()[0]
	// Writes go through the other follower, so they are forwarded to
	// whichever node leads.
	var writer *clustertest.Node
	for _, n := range c.Nodes {
		if n != leader && n != target {
			writer = n
		}
	}

	var (
		mu    sync.Mutex
		acked []string
		fails int
	)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			k, err := writer.Server().Keys().CreateKey(wctx, keys.CreateParams{Organization: c.Org.ID, Name: "transfer"})
			mu.Lock()
			if err == nil {
				acked = append(acked, k.ID)
			} else {
				fails++
			}
			mu.Unlock()
		}
	}()
	clustertest.WaitFor(t, 10*time.Second, "writes before the transfer", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 5
	})

	// Asked of a follower (writer): forwarded to the leader.
	if err := writer.Server().Node().TransferLeadership(ctx, target.ID); err != nil {
		t.Fatalf("transfer leadership to %s: %v", target.ID, err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the named node to lead", func() bool {
		return target.Server().Node().IsLeader()
	})
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	clustertest.WaitFor(t, 10*time.Second, "writes after the transfer", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= before+5
	})
	stop()
	wg.Wait()

	if got := c.Leader(); got != target {
		t.Fatalf("leader: got %s, want %s", got.ID, target.ID)
	}
	for _, n := range c.Nodes {
		requireKeys(t, ctx, n, acked)
	}
	t.Logf("%d writes acknowledged, %d failed during the transfer", len(acked), fails)
}

// TestPeers_RemoveFollower: a stopped follower removed from the zone is
// gone from the configuration and from peers, the zone keeps serving
// writes with two voters, and an unknown id or the last-but-one checks
// refuse with clear errors.
func TestPeers_RemoveFollower(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := membershipCtx(t)
	before := createKeys(t, ctx, c.Leader(), 3)

	gone := c.Followers()[0]
	c.Stop(gone)
	var asker *clustertest.Node // a follower that stays: the call is forwarded
	for _, n := range c.Followers() {
		asker = n
	}
	if err := asker.Server().Node().RemovePeer(ctx, gone.ID); err != nil {
		t.Fatalf("remove %s: %v", gone.ID, err)
	}
	leader := c.Leader()
	if got := raftVoters(t, leader.Server().Node()); len(got) != 2 || got[gone.ID] {
		t.Fatalf("voters after removal: got %v", got)
	}
	after := createKeys(t, ctx, asker, 3)
	for _, n := range []*clustertest.Node{leader, asker} {
		requireKeys(t, ctx, n, append(before, after...))
	}
	ps, err := asker.Server().Node().Peers(ctx)
	if err != nil || len(ps) != 2 {
		t.Fatalf("peers after removal: got %+v, %v", ps, err)
	}
	for _, p := range ps {
		if p.ID == gone.ID || p.State == "unreachable" {
			t.Errorf("peers after removal: %+v", p)
		}
	}

	if err := asker.Server().Node().RemovePeer(ctx, "no-such-node"); !errors.Is(err, cluster.ErrUnknownPeer) {
		t.Errorf("remove unknown: got %v, want ErrUnknownPeer", err)
	}
	if err := asker.Server().Node().RemovePeer(ctx, leader.ID); !errors.Is(err, cluster.ErrRemoveLeader) {
		t.Errorf("remove leader: got %v, want ErrRemoveLeader", err)
	}
	cl, err := client.New(asker.Addr(), c.OperatorToken)
	if err != nil {
		t.Fatal(err)
	}
	err = cl.RemovePeer(ctx, "no-such-node")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 404 || ce.Code != wire.CodePeerNotFound {
		t.Errorf("DELETE unknown peer: got %v, want 404 %s", err, wire.CodePeerNotFound)
	}
}
