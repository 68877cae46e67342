package api

import (
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// wireKey converts a key of the state to its wire form, leaving out the
// versions (and so every wrapped blob).
func wireKey(k *fsm.Key) wire.Key {
	w := wire.Key{
		ID:             k.ID,
		Organization:   k.Organization,
		Name:           k.Name,
		Description:    k.Description,
		Tags:           nonNil(k.Tags),
		Usage:          k.Usage,
		Algorithm:      k.Algorithm,
		Origin:         k.Origin,
		State:          string(k.State),
		Protected:      k.Protected,
		CurrentVersion: k.CurrentVersion,
		PrimaryZone:    k.PrimaryZone,
		ReplicaZones:   nonNil(k.ReplicaZones),
		CreatedAt:      unixTime(k.CreatedAt),
		UpdatedAt:      unixTime(k.UpdatedAt),
		DeletionAt:     unixTime(k.DeletionAt),
		Revision:       k.Revision,
	}
	if k.PendingVersion != 0 {
		w.PendingVersion = k.PendingVersion
		w.PendingZones = nonNil(k.PendingZones)
	}
	w.ReplicaSeq = k.ReplicaSeq
	if k.RotationPolicy.Period > 0 {
		w.RotationPolicy.RotationPeriod = time.Duration(k.RotationPolicy.Period).String()
		w.RotationPolicy.NextRotationAt = unixTime(k.RotationPolicy.NextRotationAt)
	}
	return w
}

func wireVersions(k *fsm.Key) wire.KeyVersions {
	w := wire.KeyVersions{KeyID: k.ID, CurrentVersion: k.CurrentVersion, Versions: make([]wire.KeyVersion, 0, len(k.Versions))}
	for _, v := range k.Versions {
		w.Versions = append(w.Versions, wire.KeyVersion{Number: v.Number, State: string(v.State), CreatedAt: unixTime(v.CreatedAt)})
	}
	return w
}

func wireStatus(st cluster.Status) wire.ClusterStatus {
	w := wire.ClusterStatus{
		Zone:         st.Zone,
		NodeID:       st.NodeID,
		Leader:       st.Leader,
		Term:         st.Term,
		Nodes:        make([]wire.NodeStatus, 0, len(st.Nodes)),
		AppliedIndex: st.AppliedIndex,
		CommitIndex:  st.CommitIndex,
	}
	for _, n := range st.Nodes {
		w.Nodes = append(w.Nodes, wire.NodeStatus{ID: n.ID, APIAddress: n.APIAddress, RaftAddress: n.RaftAddress, State: n.State})
	}
	return w
}

func wirePeers(ps []cluster.PeerStatus) wire.PeersResponse {
	w := wire.PeersResponse{Peers: make([]wire.Peer, 0, len(ps))}
	for _, p := range ps {
		wp := wire.Peer{ID: p.ID, RaftAddress: p.RaftAddress, APIAddress: p.APIAddress, State: p.State, AppliedIndex: p.AppliedIndex}
		if p.LastContact != nil {
			wp.LastContact = p.LastContact.Round(time.Millisecond).String()
		}
		w.Peers = append(w.Peers, wp)
	}
	return w
}

func wireZones(zs []cluster.ZoneStatus) wire.ZonesResponse {
	w := wire.ZonesResponse{Zones: make([]wire.ZoneStatus, 0, len(zs))}
	for _, z := range zs {
		nodes := make([]wire.ZoneNode, 0, len(z.Nodes))
		for _, n := range z.Nodes {
			nodes = append(nodes, wire.ZoneNode{ID: n.ID, APIAddress: n.APIAddress})
		}
		w.Zones = append(w.Zones, wire.ZoneStatus{
			Name: z.Name, Local: z.Local, Nodes: nodes,
			ChangeSeq: z.ChangeSeq, Applied: z.Applied, Acked: z.Acked, LagEntries: z.LagEntries,
			LagSeconds: z.LagSeconds,
		})
	}
	return w
}

func wireDigests(r cluster.DigestReport) wire.DigestReport {
	w := wire.DigestReport{Zone: r.Zone, Node: r.Node, ChangeSeq: r.ChangeSeq, Keys: make([]wire.KeyDigest, 0, len(r.Keys))}
	for _, d := range r.Keys {
		w.Keys = append(w.Keys, wire.KeyDigest{
			KeyID: d.KeyID, PrimaryZone: d.PrimaryZone, ReplicaZones: nonNil(d.ReplicaZones),
			Digest: d.Digest, ReplicaSeq: d.ReplicaSeq,
		})
	}
	return w
}

func cryptoContext(m map[string]string, ad []byte) keys.Context {
	return keys.Context{Map: m, AssociatedData: ad}
}

// unixTime converts unix nanoseconds to UTC; 0 is the zero time, which
// the wire types omit.
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
