package cluster

import (
	"context"

	"github.com/keyzone/keyzone/fsm"
)

// DigestReport is one node's account of the multi-zone keys its zone
// holds, for comparing zones with each other (`keyzone cluster verify`).
type DigestReport struct {
	Zone string `json:"zone"`
	Node string `json:"node"`
	// ChangeSeq is the head of the zone's change log, read just before
	// the digests: they reflect at least this sequence.
	ChangeSeq uint64          `json:"change_seq"`
	Keys      []fsm.KeyDigest `json:"keys"`
}

// Digests returns the digests of every multi-zone key this zone holds,
// primaries and replicas (see fsm.ReplicatedDigests). It reads after a
// ConsistentRead, so the report reflects every write acknowledged in the
// zone before the call, whichever node answers; it fails as
// ConsistentRead does when the zone has no leader.
func (n *Node) Digests(ctx context.Context) (DigestReport, error) {
	if err := n.ConsistentRead(ctx); err != nil {
		return DigestReport{}, err
	}
	return DigestReport{
		Zone:      n.cfg.Zone,
		Node:      n.cfg.NodeID,
		ChangeSeq: n.fsm.ChangeSeq(),
		Keys:      n.fsm.ReplicatedDigests(),
	}, nil
}
