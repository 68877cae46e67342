package cluster

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// A node that gossip lost (its zone cut off the network gossip uses)
// is no longer a live member, but a follower still finds its leader's
// API address through it.
func TestPool_MemberOutlivesGossip(t *testing.T) {
	p := &pool{logger: hclog.NewNullLogger(), notify: make(chan struct{}), live: map[string]Member{}, known: map[string]Member{}}
	meta, _ := json.Marshal(Member{ID: "a1", Zone: "zone-a", APIAddress: "http://10.0.0.1:8200", RaftAddress: "10.0.0.1:8300"})
	n := &memberlist.Node{Name: "a1", Meta: meta}
	p.NotifyJoin(n)
	if got := p.members(); len(got) != 1 || got[0].ID != "a1" {
		t.Fatalf("members after join = %+v", got)
	}
	p.NotifyLeave(n)
	if got := p.members(); len(got) != 0 {
		t.Fatalf("members after leave = %+v, want none", got)
	}
	if m, ok := p.member("a1"); !ok || m.APIAddress != "http://10.0.0.1:8200" {
		t.Fatalf("member(a1) after leave = %+v, %v; want its last known address", m, ok)
	}
}
