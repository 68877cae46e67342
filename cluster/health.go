package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Health is a node's answer to "may it take traffic?", in three levels:
//   - Live: the process serves (false only once Raft is shut down).
//   - Ready: it can serve consistent reads and writes now: it knows a
//     leader it hears from and has applied nearly all the leader has (or it
//     leads and has passed its term's Barrier).
//   - Degraded: ready, but something an operator must look at soon: a
//     voter of the zone is unreachable, or a remote zone lags behind this
//     zone's change log longer than Config.ReplicationLagThreshold.
//
// Reasons says why the node is not ready or is degraded, most important
// first; Reason is its first entry.
type Health struct {
	Live     bool     `json:"live"`
	Ready    bool     `json:"ready"`
	Degraded bool     `json:"degraded"`
	Reason   string   `json:"reason,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`

	NodeID string `json:"node_id,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// State is the Raft state: leader, follower, candidate or shutdown.
	State        string `json:"state,omitempty"`
	Leader       string `json:"leader,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	// LeaderIndex is the index the leader vouched for when this follower
	// asked (0 on the leader, or when it was not asked).
	LeaderIndex uint64 `json:"leader_index,omitempty"`
}

// maxAppliedLag is how many entries a follower may have left to apply
// behind its leader and still be ready. A follower installing a snapshot
// or replaying a long log is far beyond it; one keeping up under load is
// a few batches (64 entries each) behind at most. Consul's autopilot calls
// a server healthy within 250 trailing logs; readiness is a coarser
// question, and flapping under a write burst would be worse.
const maxAppliedLag = 1000

// healthLeaderTimeout bounds the question a follower asks its leader.
const healthLeaderTimeout = time.Second

// Health reports whether this node is live, ready and degraded, with the
// reasons. A follower asks its leader for the leader's applied index
// (one internal call, bounded by a second), so that a follower that hears
// heartbeats but is far behind (installing a snapshot, replaying the log)
// is not ready. Heartbeats don't carry the leader's index, so no local
// value tells it.
func (n *Node) Health(ctx context.Context) Health {
	if r := n.removedReason(); r != "" {
		return Health{Live: true, Reason: r, Reasons: []string{r}, NodeID: n.cfg.NodeID, Zone: n.cfg.Zone}
	}
	f := n.localHealthFacts(ctx)
	lim := n.healthLimits()
	if f.needsLeaderIndex(lim) {
		cctx, cancel := context.WithTimeout(ctx, healthLeaderTimeout)
		f.leaderIndex, f.leaderErr = n.leaderAppliedIndex(cctx)
		cancel()
		f.askedLeader = true
		// Read after the answer: what this node applied meanwhile counts.
		f.applied = n.raft.AppliedIndex()
	}
	return f.decide(lim)
}

// leaderAppliedIndex asks the leader for its applied index, the way Peers
// asks each voter: a plain read of the leader's state, not a read index,
// since the question is how far behind this node is, not a linearizable
// read (which would cost the leader a heartbeat round per probe).
func (n *Node) leaderAppliedIndex(ctx context.Context) (uint64, error) {
	leader, ok := n.leaderMember()
	if !ok {
		return 0, ErrNoLeader
	}
	var st peerStateResponse
	if err := n.callPeer(ctx, leader, http.MethodGet, internalPeerState, nil, &st); err != nil {
		return 0, err
	}
	return st.AppliedIndex, nil
}

// healthFacts is what Health decides on, gathered first so that decide is
// a pure function the tests drive through every case.
type healthFacts struct {
	nodeID, zone string
	state        raft.RaftState
	term, commit uint64
	applied      uint64
	leader       string
	// leaderReady: this node leads and has passed its term's Barrier.
	leaderReady bool
	// sinceContact is how long ago this follower heard from the leader;
	// negative when it never did.
	sinceContact time.Duration

	askedLeader bool
	leaderIndex uint64
	leaderErr   error

	voters []voterFacts
	zones  []ZoneStatus
}

type voterFacts struct {
	id     string
	inPool bool
	// sinceContact is how long ago this node, as leader, last had an
	// answer from the voter; negative when unknown (not the leader, or no
	// answer since the process started).
	sinceContact time.Duration
}

type healthLimits struct {
	// contact is how long a follower may go without hearing from its
	// leader, and the leader without an answer from a voter.
	contact        time.Duration
	appliedLag     uint64
	replicationLag time.Duration
}

func (n *Node) healthLimits() healthLimits {
	return healthLimits{
		contact:        5 * n.cfg.HeartbeatTimeout,
		appliedLag:     maxAppliedLag,
		replicationLag: n.cfg.ReplicationLagThreshold,
	}
}

func (n *Node) localHealthFacts(ctx context.Context) healthFacts {
	f := healthFacts{
		nodeID:       n.cfg.NodeID,
		zone:         n.cfg.Zone,
		state:        n.raft.State(),
		term:         n.raft.CurrentTerm(),
		commit:       n.raft.CommitIndex(),
		applied:      n.raft.AppliedIndex(),
		sinceContact: -1,
	}
	if f.state == raft.Shutdown {
		return f
	}
	_, id := n.raft.LeaderWithID()
	f.leader = string(id)
	if f.state == raft.Leader {
		f.leaderReady = n.isLeaderReady()
	} else if last := n.raft.LastContact(); !last.IsZero() {
		f.sinceContact = time.Since(last)
	}
	inPool := map[string]bool{}
	if p := n.pool.Load(); p != nil {
		for _, m := range p.members() {
			inPool[m.ID] = true
		}
	}
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return f // raft shut down meanwhile
	}
	now := time.Now()
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage != raft.Voter || string(s.ID) == n.cfg.NodeID {
			continue
		}
		v := voterFacts{id: string(s.ID), inPool: inPool[string(s.ID)], sinceContact: -1}
		if f.state == raft.Leader {
			if at, ok := telemetry.lastContact(v.id); ok {
				v.sinceContact = now.Sub(at)
			}
		}
		f.voters = append(f.voters, v)
	}
	f.zones, _ = n.Zones(ctx)
	return f
}

// needsLeaderIndex: only a follower that passes the local checks asks its
// leader, so a node without a leader answers at once.
func (f *healthFacts) needsLeaderIndex(lim healthLimits) bool {
	return f.state == raft.Follower && f.leader != "" && f.sinceContact >= 0 && f.sinceContact <= lim.contact
}

// decide turns the facts into a Health. Readiness is checked first; the
// degraded checks only run on a ready node (one without a leader can't
// judge its zone).
func (f *healthFacts) decide(lim healthLimits) Health {
	h := Health{
		Live: true, NodeID: f.nodeID, Zone: f.zone, State: strings.ToLower(f.state.String()),
		Leader: f.leader, Term: f.term, AppliedIndex: f.applied, CommitIndex: f.commit,
		LeaderIndex: f.leaderIndex,
	}
	if r := f.notReady(lim); r != "" {
		h.Live = f.state != raft.Shutdown
		h.Reasons = []string{r}
		h.Reason = r
		return h
	}
	h.Ready = true
	h.Reasons = f.degraded(lim)
	if len(h.Reasons) > 0 {
		h.Degraded = true
		h.Reason = h.Reasons[0]
	}
	return h
}

func (f *healthFacts) notReady(lim healthLimits) string {
	switch f.state {
	case raft.Shutdown:
		return "shutting down"
	case raft.Leader:
		if !f.leaderReady {
			return "leader is catching up: it has not applied the entries of earlier terms yet"
		}
		return ""
	case raft.Candidate:
		return "no known leader: an election is under way"
	}
	switch {
	case f.leader == "":
		return "no known leader"
	case f.sinceContact < 0:
		return fmt.Sprintf("no contact with the leader %s yet", f.leader)
	case f.sinceContact > lim.contact:
		return fmt.Sprintf("no contact with the leader %s for %s (limit %s)", f.leader, roundDuration(f.sinceContact), lim.contact)
	case !f.askedLeader:
		return "" // not reached: Health asks whenever the checks above pass
	case f.leaderErr != nil:
		return fmt.Sprintf("the leader %s did not give its applied index: %v", f.leader, f.leaderErr)
	case f.leaderIndex > f.applied && f.leaderIndex-f.applied > lim.appliedLag:
		return fmt.Sprintf("catching up: applied index %d is %d entries behind the leader's %d", f.applied, f.leaderIndex-f.applied, f.leaderIndex)
	}
	return ""
}

func (f *healthFacts) degraded(lim healthLimits) []string {
	var out []string
	for _, v := range f.voters {
		switch {
		case !v.inPool:
			out = append(out, fmt.Sprintf("voter %s is unreachable: not in the gossip pool", v.id))
		case v.sinceContact > lim.contact:
			out = append(out, fmt.Sprintf("voter %s is unreachable: no answer to the leader for %s", v.id, roundDuration(v.sinceContact)))
		}
	}
	for _, z := range f.zones {
		if z.Local || lim.replicationLag <= 0 {
			continue
		}
		if lag := time.Duration(z.LagSeconds * float64(time.Second)); lag > lim.replicationLag {
			out = append(out, fmt.Sprintf("zone %s lags: %d changes of this zone unacknowledged, the oldest for %s (threshold %s)",
				z.Name, z.LagEntries, roundDuration(lag), lim.replicationLag))
		}
	}
	return out
}

func roundDuration(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
