package cluster

import (
	"context"
)

// Status returns this node's view of its zone: the voters with their
// addresses and state, the leader, and the applied index.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st := Status{
		Zone:         n.cfg.Zone,
		NodeID:       n.cfg.NodeID,
		Term:         n.raft.CurrentTerm(),
		AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
	}
	_, leaderID := n.raft.LeaderWithID()
	st.Leader = string(leaderID)
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Status{}, mapRaftError(err)
	}
	alive := map[string]Member{}
	if p := n.pool.Load(); p != nil {
		for _, m := range p.members() {
			alive[m.ID] = m
		}
	}
	for _, s := range f.Configuration().Servers {
		ns := NodeStatus{ID: string(s.ID), RaftAddress: string(s.Address), State: "follower"}
		m, ok := alive[ns.ID]
		switch {
		case !ok && ns.ID != n.cfg.NodeID:
			ns.State = "unreachable"
		case s.ID == leaderID:
			ns.State = "leader"
		}
		if ok {
			ns.APIAddress = m.APIAddress
		}
		if ns.ID == n.cfg.NodeID {
			ns.APIAddress = n.cfg.APIAddress
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st, nil
}
