package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
	"github.com/keyzone/keyzone/test/clustertest"
)

const org = fsm.DefaultOrganization

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func node(n *clustertest.Node) *cluster.Node { return n.Server().Node() }

// voters returns the voters of n's latest Raft configuration.
func voters(t *testing.T, n *cluster.Node) map[string]bool {
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

func createKey(t *testing.T, ctx context.Context, n *clustertest.Node, name string) *fsm.Key {
	t.Helper()
	k, err := n.Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: name})
	if err != nil {
		t.Fatalf("create key %s on %s: %v", name, n.ID, err)
	}
	return k
}

func command(t *testing.T, typ fsm.CommandType, payload any) fsm.Command {
	t.Helper()
	cmd, err := fsm.NewCommand(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func keyRef(id string) fsm.KeyRefV1 {
	return fsm.KeyRefV1{KeyID: id, Organization: org, Now: time.Now().UnixNano()}
}

// TestCluster_BootstrapExpect: three nodes started with bootstrap-expect
// 3, each joining the previous one, elect one leader; all three are
// voters, and only the lowest id called BootstrapCluster.
func TestCluster_BootstrapExpect(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	leader := c.Leader()
	clustertest.WaitFor(t, 10*time.Second, "every node to follow the same leader", func() bool {
		for _, n := range c.Nodes {
			if _, id := node(n).Raft().LeaderWithID(); string(id) != leader.ID {
				return false
			}
		}
		return true
	})
	leaders := 0
	for _, n := range c.Nodes {
		if node(n).IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("got %d leaders, want 1", leaders)
	}
	for _, n := range c.Nodes {
		got := voters(t, node(n))
		if len(got) != 3 {
			t.Errorf("%s sees voters %v, want 3", n.ID, got)
		}
		for _, o := range c.Nodes {
			if !got[o.ID] {
				t.Errorf("%s does not see %s as a voter", n.ID, o.ID)
			}
		}
	}
	total := 0
	for _, n := range c.Nodes {
		b := cluster.BootstrapCount(node(n))
		total += b
		if want := map[bool]int{true: 1, false: 0}[n == c.Nodes[0]]; b != want {
			t.Errorf("%s bootstrapped %d times, want %d", n.ID, b, want)
		}
	}
	if total != 1 {
		t.Fatalf("got %d bootstraps in the zone, want 1", total)
	}
}

// TestCluster_LateNodeWithLowerIDDoesNotBootstrap: a node that joins a
// running zone with the zone's bootstrap-expect, and whose id sorts
// first, must not bootstrap a configuration of its own: the others
// already have Raft state. Its Raft address is unreachable here, so that
// the leader cannot add it first (which it usually does, and which would
// hide the question); the node must still decline to bootstrap.
func TestCluster_LateNodeWithLowerIDDoesNotBootstrap(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	logs := &syncBuffer{}
	late := c.AddNode(
		clustertest.WithNodeID("zone-a-node0"),
		clustertest.WithZoneBootstrapExpect(),
		clustertest.WithConfig(func(cfg *server.Config) {
			cfg.Cluster.RaftAdvertise = "127.0.0.1:1"
			cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})
		}),
	)
	clustertest.WaitFor(t, 10*time.Second, "the late node to decide about bootstrapping", func() bool {
		return strings.Contains(logs.String(), "already has raft state") || cluster.BootstrapCount(node(late)) > 0
	})
	if b := cluster.BootstrapCount(node(late)); b != 0 {
		t.Fatalf("late node bootstrapped %d times, want 0", b)
	}
	// The leader still adds it as a voter (it cannot reach it).
	clustertest.WaitFor(t, 10*time.Second, "the late node as a voter", func() bool {
		return voters(t, node(c.Leader()))[late.ID]
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCluster_ForwardedProposal: a follower's proposal is forwarded to
// the leader, and the FSM's result comes back, refusals included, with
// errors that still match their sentinel or type.
func TestCluster_ForwardedProposal(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 20*time.Second)
	leader := c.Leader()
	k := createKey(t, ctx, leader, "forwarded")
	f := node(c.Followers()[0])

	res, idx, err := f.Propose(ctx, command(t, fsm.CmdDisableKey, keyRef(k.ID)))
	if err != nil {
		t.Fatalf("disable through a follower: %v", err)
	}
	if f.IsLeader() {
		t.Fatal("the proposing node became leader; the proposal was not forwarded")
	}
	if res.Err != nil || res.Key == nil || res.Key.State != fsm.KeyStateDisabled {
		t.Fatalf("got result %+v, want the disabled key", res)
	}
	if idx == 0 {
		t.Fatal("got log index 0, want the entry's index")
	}
	if err := leader.Server().FSM().WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	if got, _ := leader.Server().FSM().Key(k.ID); got.State != fsm.KeyStateDisabled {
		t.Fatalf("leader has key in state %s at index %d, want disabled", got.State, idx)
	}

	res, _, err = f.Propose(ctx, command(t, fsm.CmdEnableKey, keyRef("00000000-0000-4000-8000-000000000000")))
	if err != nil {
		t.Fatalf("enable unknown key: got proposal error %v, want the FSM's refusal in the result", err)
	}
	if !errors.Is(res.Err, fsm.ErrKeyNotFound) {
		t.Fatalf("enable unknown key: got %v, want fsm.ErrKeyNotFound", res.Err)
	}

	res, _, err = f.Propose(ctx, command(t, fsm.CmdCancelDeletion, keyRef(k.ID)))
	var te *fsm.TransitionError
	if err != nil || !errors.As(res.Err, &te) {
		t.Fatalf("cancel deletion of a disabled key: got (%v, %v), want a *fsm.TransitionError", res.Err, err)
	}
}

// TestCluster_ConsistentReadOnFollower: a follower's consistent read
// sees a write the leader acknowledged just before.
func TestCluster_ConsistentReadOnFollower(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 20*time.Second)
	leader := c.Leader()
	followers := c.Followers()
	for i := 0; i < 20; i++ {
		k := createKey(t, ctx, leader, "read-after-write")
		f := followers[i%len(followers)]
		if err := node(f).ConsistentRead(ctx); err != nil {
			t.Fatalf("consistent read on %s: %v", f.ID, err)
		}
		if _, ok := f.Server().FSM().Key(k.ID); !ok {
			t.Fatalf("round %d: %s misses key %s after a consistent read", i, f.ID, k.ID)
		}
	}
}

// TestCluster_ProposeDuringFailover: with the leader stopping, a
// follower's proposal waits for the new leader and succeeds.
func TestCluster_ProposeDuringFailover(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 20*time.Second)
	old := c.Leader()
	k := createKey(t, ctx, old, "failover")
	followers := c.Followers()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Stop(old)
	}()
	clustertest.WaitFor(t, 5*time.Second, "the leader to stop", func() bool { return old.Server() == nil })
	start := time.Now()
	res, _, err := node(followers[0]).Propose(ctx, command(t, fsm.CmdDisableKey, keyRef(k.ID)))
	elapsed := time.Since(start)
	wg.Wait()
	if err != nil {
		t.Fatalf("propose during failover: %v", err)
	}
	if res.Err != nil || res.Key.State != fsm.KeyStateDisabled {
		t.Fatalf("got result %+v, want the disabled key", res)
	}
	t.Logf("proposal took %s", elapsed)
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatal("the stopped node still leads")
	}
	for _, f := range followers {
		if err := node(f).ConsistentRead(ctx); err != nil {
			t.Fatalf("consistent read on %s: %v", f.ID, err)
		}
		if got, _ := f.Server().FSM().Key(k.ID); got.State != fsm.KeyStateDisabled {
			t.Fatalf("%s has the key %s, want disabled", f.ID, got.State)
		}
	}
}

// TestCluster_NoQuorum: with two of three nodes stopped, a proposal
// fails with ErrNoLeader once LeaderWait has passed, rather than hang.
func TestCluster_NoQuorum(t *testing.T) {
	t.Parallel()
	const leaderWait = 1500 * time.Millisecond
	c := clustertest.New(t, 3, clustertest.Options{LeaderWait: leaderWait})
	ctx := testCtx(t, 20*time.Second)
	k := createKey(t, ctx, c.Leader(), "no-quorum")
	followers := c.Followers()
	rest := followers[0]

	var wg sync.WaitGroup
	for _, n := range []*clustertest.Node{c.Leader(), followers[1]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Stop(n)
		}()
	}
	wg.Wait()
	clustertest.WaitFor(t, 5*time.Second, "the last node to look for a leader", func() bool {
		return node(rest).Raft().State() == raft.Candidate
	})
	start := time.Now()
	_, _, err := node(rest).Propose(ctx, command(t, fsm.CmdDisableKey, keyRef(k.ID)))
	elapsed := time.Since(start)
	if !errors.Is(err, cluster.ErrNoLeader) {
		t.Fatalf("got %v, want cluster.ErrNoLeader", err)
	}
	if elapsed < leaderWait || elapsed > leaderWait+time.Second {
		t.Fatalf("failed after %s, want about LeaderWait (%s)", elapsed, leaderWait)
	}
	if err := node(rest).ConsistentRead(ctx); !errors.Is(err, cluster.ErrNoLeader) {
		t.Fatalf("consistent read without quorum: got %v, want cluster.ErrNoLeader", err)
	}
}
