package test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

func membershipCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testOrg returns the id of the test organization, as node's state holds
// it (clustertest creates it in every zone before handing the zone over).
func testOrg(t *testing.T, node *clustertest.Node) string {
	t.Helper()
	o, ok := node.Server().FSM().OrganizationByName(clustertest.TestOrganization)
	if !ok {
		t.Fatalf("%s holds no organization %q", node.ID, clustertest.TestOrganization)
	}
	return o.ID
}

// createKeys creates n keys of the test organization through node and
// returns their ids.
func createKeys(t *testing.T, ctx context.Context, node *clustertest.Node, n int) []string {
	t.Helper()
	org := testOrg(t, node)
	var ids []string
	for i := 0; i < n; i++ {
		k, err := node.Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: "member"})
		if err != nil {
			t.Fatalf("create key %d on %s: %v", i, node.ID, err)
		}
		ids = append(ids, k.ID)
	}
	return ids
}

// requireKeys checks, after a consistent read, that node has every key.
func requireKeys(t *testing.T, ctx context.Context, node *clustertest.Node, ids []string) {
	t.Helper()
	if err := node.Server().Node().ConsistentRead(ctx); err != nil {
		t.Fatalf("consistent read on %s: %v", node.ID, err)
	}
	for _, id := range ids {
		if _, ok := node.Server().FSM().Key(id); !ok {
			t.Fatalf("%s misses key %s", node.ID, id)
		}
	}
}

func raftVoters(t *testing.T, n *cluster.Node) map[string]bool {
	t.Helper()
	f := n.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatalf("configuration of %s: %v", n.ID(), err)
	}
	out := map[string]bool{}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out[string(s.ID)] = true
		}
	}
	return out
}

func raftStat(t *testing.T, n *cluster.Node, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(n.Raft().Stats()[name], 10, 64)
	if err != nil {
		t.Fatalf("raft stat %s of %s: %v", name, n.ID(), err)
	}
	return v
}

// TestMembership_LateNodeJoinsAsVoter: a fourth node started later, with
// bootstrap-expect 0, is added as a voter by the leader on its own and
// catches up with every key created before it joined; writes through it
// work.
func TestMembership_LateNodeJoinsAsVoter(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := membershipCtx(t)
	ids := createKeys(t, ctx, c.Leader(), 10)

	late := c.AddNode()
	clustertest.WaitFor(t, 10*time.Second, "the leader to add the late node as a voter", func() bool {
		return raftVoters(t, c.Leader().Server().Node())[late.ID]
	})
	requireKeys(t, ctx, late, ids)
	if got := raftVoters(t, late.Server().Node()); len(got) != 4 {
		t.Fatalf("late node sees voters %v, want 4", got)
	}
	c.WaitReady(10 * time.Second)

	more := createKeys(t, ctx, late, 3)
	for _, n := range c.Nodes {
		requireKeys(t, ctx, n, more)
	}
}

// TestMembership_FollowerCatchesUpFromSnapshot: a follower stopped while
// the leader writes more than its trailing logs, snapshots and truncates
// its log comes back and is sent the snapshot (InstallSnapshot), then has
// every key.
func TestMembership_FollowerCatchesUpFromSnapshot(t *testing.T) {
	t.Parallel()
	const trailing = 4
	c := clustertest.New(t, 3, clustertest.Options{SnapshotThreshold: 8, TrailingLogs: trailing})
	ctx := membershipCtx(t)
	before := createKeys(t, ctx, c.Leader(), 3)

	f := c.Followers()[0]
	requireKeys(t, ctx, f, before)
	behind := f.Server().Node().Raft().LastIndex()
	c.Stop(f)

	leader := c.Leader()
	after := createKeys(t, ctx, leader, 40)
	// Once the leader's snapshot is more than trailing entries past the
	// stopped follower's log, the entries it lacks are gone from the
	// leader's log: only a snapshot can bring it up to date.
	clustertest.WaitFor(t, 10*time.Second, "a leader snapshot past the stopped follower", func() bool {
		return raftStat(t, leader.Server().Node(), "last_snapshot_index") > behind+trailing
	})
	snapshot := raftStat(t, leader.Server().Node(), "last_snapshot_index")

	c.Restart(f)
	requireKeys(t, ctx, f, append(before, after...))
	// Raft records the installed snapshot just after the FSM restored it.
	clustertest.WaitFor(t, 5*time.Second, "the installed snapshot on the follower", func() bool {
		return raftStat(t, f.Server().Node(), "last_snapshot_index") >= snapshot
	})
	t.Logf("follower was at index %d, leader snapshot at %d", behind, snapshot)
}
