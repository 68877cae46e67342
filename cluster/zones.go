package cluster

import (
	"context"
	"slices"
)

// ZoneNode is a node of some zone as the gossip pool sees it.
type ZoneNode struct {
	ID         string `json:"id"`
	APIAddress string `json:"api_address"`
}

// ZoneStatus is this node's view of one zone of the deployment: its live
// nodes and, for a remote zone, how far replication between the two has
// come. Applied is the remote zone's change-log sequence this zone has
// applied (replicas here of its primaries); Acked is this zone's sequence
// the remote zone has applied (replicas there of ours), as its last pull
// acknowledged while a rotation waited for it; LagEntries is this zone's
// change-log head minus Acked.
type ZoneStatus struct {
	Name       string     `json:"name"`
	Local      bool       `json:"local"`
	Nodes      []ZoneNode `json:"nodes"`
	ChangeSeq  uint64     `json:"change_seq,omitempty"`
	Applied    uint64     `json:"applied,omitempty"`
	Acked      uint64     `json:"acked,omitempty"`
	LagEntries uint64     `json:"lag_entries,omitempty"`
	// LagSeconds is the age of the oldest change of this zone the remote
	// zone has not acknowledged (0 when none).
	LagSeconds float64 `json:"lag_seconds,omitempty"`
}

// Zones returns every zone known to the pool or to the replication state,
// this zone first, the others sorted by name.
func (n *Node) Zones(ctx context.Context) ([]ZoneStatus, error) {
	byName := map[string]*ZoneStatus{}
	get := func(name string) *ZoneStatus {
		z := byName[name]
		if z == nil {
			z = &ZoneStatus{Name: name, Local: name == n.cfg.Zone, Nodes: []ZoneNode{}}
			byName[name] = z
		}
		return z
	}
	local := get(n.cfg.Zone)
	local.ChangeSeq = n.fsm.ChangeSeq()
	for _, m := range n.Members() {
		z := get(m.Zone)
		z.Nodes = append(z.Nodes, ZoneNode{ID: m.ID, APIAddress: m.APIAddress})
	}
	for _, p := range n.fsm.Replication() {
		z := get(p.Zone)
		z.Applied, z.Acked = p.Applied, p.Acked
	}
	out := []ZoneStatus{*local}
	var names []string
	for name := range byName {
		if name != n.cfg.Zone {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		z := byName[name]
		if local.ChangeSeq > z.Acked {
			z.LagEntries = local.ChangeSeq - z.Acked
			z.LagSeconds = n.lagSeconds(z.Acked)
		}
		out = append(out, *z)
	}
	return out, nil
}
