package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
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

// Health reports the node live (it answers) and ready when it knows a
// leader that it heard from recently, or leads itself.
func (n *Node) Health(ctx context.Context) Health {
	if r := n.removedReason(); r != "" {
		return Health{Live: true, Reason: r}
	}
	h := Health{Live: true}
	switch {
	case n.raft.State() == raft.Leader:
		if !n.isLeaderReady() {
			h.Reason = "leader is catching up"
			return h
		}
	case n.raft.State() == raft.Shutdown:
		h.Live = false
		h.Reason = "shutting down"
		return h
	default:
		_, id := n.raft.LeaderWithID()
		if id == "" {
			h.Reason = "no known leader"
			return h
		}
		if last := n.raft.LastContact(); last.IsZero() || time.Since(last) > 5*n.cfg.HeartbeatTimeout {
			h.Reason = "no recent contact with the leader"
			return h
		}
	}
	h.Ready = true
	return h
}
