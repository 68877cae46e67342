package fsm

import (
	"maps"
	"slices"
	"strings"
)

// RemovedNode records a node id removed from the zone's Raft
// configuration. The set is kept forever: a removed id never becomes a
// voter again (its data may be stale, or its disk was wiped and reused
// under the old name), so a replacement joins under a new id.
type RemovedNode struct {
	NodeID    string `json:"node_id"`
	Zone      string `json:"zone"`
	RemovedAt int64  `json:"removed_at"` // unix ns, chosen by the leader
}

// applyRemoveNode records p.NodeID as removed. A second record of the
// same id is a no-op, so a removal retried after an unknown outcome keeps
// the time of the first.
func applyRemoveNode(s *state, _ uint64, p *RemoveNodeV1) Result {
	switch {
	case p.NodeID == "" || p.Zone == "":
		return Result{Err: invalid("node removal without node id or zone")}
	case s.zone != "" && p.Zone != s.zone:
		return Result{Err: invalid("removal of node %s of zone %s recorded in zone %s", p.NodeID, p.Zone, s.zone)}
	case p.RemovedAt <= 0:
		return Result{Err: invalid("removal of node %s without a time", p.NodeID)}
	}
	if _, ok := s.removedNodes[p.NodeID]; ok {
		return Result{}
	}
	if s.removedNodes == nil {
		s.removedNodes = make(map[string]RemovedNode)
	}
	s.removedNodes[p.NodeID] = RemovedNode{NodeID: p.NodeID, Zone: intern(p.Zone), RemovedAt: p.RemovedAt}
	return Result{}
}

// RemovedNode returns the removal record of node id, if it was removed.
func (f *FSM) RemovedNode(id string) (RemovedNode, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.removedNodes[id]
	return r, ok
}

// RemovedNodes returns every removal record, sorted by node id.
func (f *FSM) RemovedNodes() []RemovedNode {
	f.mu.RLock()
	out := slices.Collect(maps.Values(f.st.removedNodes))
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b RemovedNode) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}
