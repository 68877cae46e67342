package cluster_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// TestCluster_Digests: a follower's report reflects a write the leader just
// acknowledged (it reads after a read index), names its zone and node,
// lists multi-zone keys only, and the replica zone's report converges on
// the primary zone's.
func TestCluster_Digests(t *testing.T) {
	t.Parallel()
	// No test organization: its default key would be one more
	// multi-zone key in the reports.
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b"}, clustertest.Options{NoOrganization: true})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 60*time.Second)
	svc := a.Leader().Server().Keys()
	mz, err := svc.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "mz", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "local"}); err != nil {
		t.Fatal(err)
	}

	f := a.Followers()[0]
	rep, err := node(f).Digests(ctx)
	if err != nil {
		t.Fatalf("digests on follower %s: %v", f.ID, err)
	}
	if rep.Zone != "zone-a" || rep.Node != f.ID || rep.ChangeSeq == 0 {
		t.Errorf("report header: got zone %q node %q change seq %d, want zone-a, %s and a change-log head", rep.Zone, rep.Node, rep.ChangeSeq, f.ID)
	}
	if len(rep.Keys) != 1 || rep.Keys[0].KeyID != mz.ID || rep.Keys[0].PrimaryZone != "zone-a" {
		t.Fatalf("follower right after the write: got %+v, want the multi-zone key %s only", rep.Keys, mz.ID)
	}
	if want := fsm.ReplicatedDigest(mz); rep.Keys[0].Digest != want {
		t.Errorf("digest %s, want the digest of the key as created, %s", rep.Keys[0].Digest, want)
	}

	var got []fsm.KeyDigest
	clustertest.WaitFor(t, 30*time.Second, "zone-b's digests to match zone-a's", func() bool {
		r, err := node(b.Followers()[0]).Digests(ctx)
		if err != nil {
			t.Logf("digests of zone-b: %v", err)
			return false
		}
		got = r.Keys
		return reflect.DeepEqual(got, rep.Keys)
	})
	if got[0].ReplicaSeq != rep.Keys[0].ReplicaSeq {
		t.Errorf("replica seq %d, want the primary's entry %d", got[0].ReplicaSeq, rep.Keys[0].ReplicaSeq)
	}
}
