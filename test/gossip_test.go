package test

import (
	"testing"
	"time"

	"github.com/keyzone/keyzone/test/clustertest"
)

// TestGossip_StrangerCannotJoin starts a node given another root key and
// the zone's gossip addresses: gossip is encrypted and authenticated with
// a key derived from the root key, so neither side ever lists the other,
// and no puller or forwarder ever sends a token to the stranger.
func TestGossip_StrangerCannotJoin(t *testing.T) {
	zone := clustertest.New(t, 3, clustertest.Options{})
	stranger := clustertest.New(t, 1, clustertest.Options{Zone: "zone-x", Token: zone.OperatorToken,
		NoOrganization: true, Join: zone.GossipAddresses()})
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range zone.Nodes {
			for _, m := range n.Server().Node().Members() {
				if m.Zone == "zone-x" {
					t.Fatalf("%s lists the stranger %s", n.ID, m.ID)
				}
			}
		}
		if got := stranger.Nodes[0].Server().Node().Members(); len(got) != 1 {
			t.Fatalf("the stranger lists %d members, want only itself", len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
