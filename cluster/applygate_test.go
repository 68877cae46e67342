package cluster_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// Concurrent proposals, on the leader and forwarded by followers, reach
// raft in batches, and each proposer gets its own entry's result.
func TestCluster_ApplyGateBatches(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{NoOrganization: true})
	ctx := testCtx(t, 60*time.Second)
	leader := c.Leader()
	createKey(t, ctx, leader, "warm-up") // the organization's first change
	before := cluster.ApplyBatches(node(leader))

	const proposers = 192
	nodes := append([]*clustertest.Node{leader}, c.Followers()...)
	var wg sync.WaitGroup
	type created struct {
		name string
		key  *fsm.Key
		idx  uint64
		err  error
	}
	results := make([]created, proposers)
	for i := range proposers {
		wg.Go(func() {
			name := fmt.Sprintf("batched-%d", i)
			k, err := nodes[i%len(nodes)].Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: name})
			results[i] = created{name: name, key: k, err: err}
			if k != nil {
				results[i].idx = k.Revision
			}
		})
	}
	wg.Wait()

	indexes := map[uint64]string{}
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("create %s: %v", r.name, r.err)
		}
		if r.key.Name != r.name {
			t.Fatalf("the proposer of %s got the result of %s", r.name, r.key.Name)
		}
		if other, dup := indexes[r.idx]; dup {
			t.Fatalf("%s and %s got the same log index %d", r.name, other, r.idx)
		}
		indexes[r.idx] = r.name
	}
	batches := cluster.ApplyBatches(node(leader)) - before
	t.Logf("%d proposals in %d batches", proposers, batches)
	if batches == 0 || batches > proposers/2 {
		t.Fatalf("%d proposals went to raft in %d batches, want at most %d", proposers, batches, proposers/2)
	}
	for _, n := range nodes {
		if err := n.Server().FSM().WaitApplied(ctx, maxKey(indexes)); err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if got, ok := n.Server().FSM().Key(r.key.ID); !ok || got.Name != r.name {
				t.Fatalf("%s: key %s is %+v, want %s", n.ID, r.key.ID, got, r.name)
			}
		}
	}
}

func maxKey(m map[uint64]string) uint64 {
	var top uint64
	for k := range m {
		top = max(top, k)
	}
	return top
}
