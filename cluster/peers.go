package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Errors of the peer administration calls (RemovePeer,
// TransferLeadership).
var (
	ErrUnknownPeer = errors.New("cluster: no voter with this id in the zone")
	ErrLastVoter   = errors.New("cluster: refusing to remove the zone's last voter")
	// ErrRemoveLeader: removing the leader would start an election the
	// operator did not choose; transfer leadership first.
	ErrRemoveLeader   = errors.New("cluster: refusing to remove the leader; transfer leadership first")
	ErrTransferFailed = errors.New("cluster: leadership transfer did not complete")
)

// Internal routes of the peer administration calls.
const (
	internalPeerState  = "/v1/internal/peer-state"
	internalRemovePeer = "/v1/internal/remove-peer"
	internalTransfer   = "/v1/internal/transfer-leadership"

	// peerStateTimeout bounds the question Peers asks each other voter.
	peerStateTimeout = time.Second
)

// Internal error codes of the peer administration calls.
const (
	internalCodeUnknownPeer    = "unknown_peer"
	internalCodeLastVoter      = "last_voter"
	internalCodeRemoveLeader   = "remove_leader"
	internalCodeTransferFailed = "transfer_failed"
)

// PeerStatus is one voter of the zone as Peers reports it.
type PeerStatus struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	// APIAddress comes from the gossip pool; "" when the node was never
	// seen there.
	APIAddress string `json:"api_address"`
	// State is leader, follower or unreachable (not in the pool, or it
	// did not answer within a second).
	State string `json:"state"`
	// LastContact is how long ago the node last heard from its leader, as
	// the node itself reports it (0 on the leader); nil when it did not
	// answer. hashicorp/raft v1.7 keeps the leader's per-follower last
	// contact unexported, so it is each node's own view.
	LastContact *time.Duration `json:"last_contact"`
	// AppliedIndex is the node's own applied index; nil when it did not
	// answer.
	AppliedIndex *uint64 `json:"applied_index"`
}

// peerStateResponse is a node's answer to internalPeerState.
type peerStateResponse struct {
	AppliedIndex uint64        `json:"applied_index"`
	LastContact  time.Duration `json:"last_contact"`
}

// localPeerState is this node's applied index and time since it last
// heard from the leader (0 when it leads, as raft's Stats says).
func (n *Node) localPeerState() peerStateResponse {
	st := peerStateResponse{AppliedIndex: n.raft.AppliedIndex()}
	if n.raft.State() != raft.Leader {
		if last := n.raft.LastContact(); !last.IsZero() {
			st.LastContact = time.Since(last)
		} else {
			st.LastContact = -1
		}
	}
	return st
}

// Peers lists every voter of the zone's Raft configuration as this node
// knows it, in configuration order. The applied index and last contact of
// each other voter are asked of that voter (in parallel, a second each);
// a voter that does not answer is reported unreachable with neither.
func (n *Node) Peers(ctx context.Context) ([]PeerStatus, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapRaftError(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	alive := map[string]Member{}
	if p := n.pool.Load(); p != nil {
		for _, m := range p.members() {
			alive[m.ID] = m
		}
	}
	var out []PeerStatus
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		ps := PeerStatus{ID: string(s.ID), RaftAddress: string(s.Address), State: "follower"}
		if s.ID == leaderID {
			ps.State = "leader"
		}
		if m, ok := alive[ps.ID]; ok {
			ps.APIAddress = m.APIAddress
		} else if ps.ID != n.cfg.NodeID {
			ps.State = "unreachable"
		}
		out = append(out, ps)
	}

	var wg sync.WaitGroup
	for i := range out {
		ps := &out[i]
		if ps.ID == n.cfg.NodeID {
			ps.APIAddress = n.cfg.APIAddress
			ps.setState(n.localPeerState())
			continue
		}
		if ps.State == "unreachable" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, peerStateTimeout)
			defer cancel()
			var st peerStateResponse
			err := n.callPeer(cctx, Member{ID: ps.ID, APIAddress: ps.APIAddress}, http.MethodGet, internalPeerState, nil, &st)
			if err != nil {
				n.logger.Debug("peer state unavailable", "node", ps.ID, "error", err)
				ps.State = "unreachable"
				return
			}
			ps.setState(st)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (ps *PeerStatus) setState(st peerStateResponse) {
	applied := st.AppliedIndex
	ps.AppliedIndex = &applied
	if st.LastContact >= 0 {
		lc := st.LastContact
		ps.LastContact = &lc
	}
}

type removePeerRequest struct {
	ID string `json:"id"`
}

type transferRequest struct {
	ID string `json:"id"`
}

// RemovePeer removes the voter id from the zone's Raft configuration. Any
// node accepts it and forwards it to the leader. It refuses an id that is
// not a voter (ErrUnknownPeer), the last voter (ErrLastVoter) and the
// leader itself (ErrRemoveLeader). Removing an id already removed
// succeeds.
//
// The leader first records the id in the zone's removed set (in the log,
// so every later leader has it too), then calls RemoveServer. No leader
// adds an id of the set back, and a node started under it refuses to
// rejoin and says why: a removed node comes back only under a new node id
// with a wiped data dir.
func (n *Node) RemovePeer(ctx context.Context, id string) error {
	body, err := json.Marshal(removePeerRequest{ID: id})
	if err != nil {
		return err
	}
	return n.onLeader(ctx, internalRemovePeer, body, func() error { return n.removePeerLocal(id) })
}

// TransferLeadership asks the leader to hand leadership to the voter id,
// or to the most up-to-date voter when id is "". Any node accepts it and
// forwards it to the leader. It returns once the old leader has stepped
// down; asking to transfer to the current leader does nothing.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	body, err := json.Marshal(transferRequest{ID: id})
	if err != nil {
		return err
	}
	return n.onLeader(ctx, internalTransfer, body, func() error { return n.transferLocal(id) })
}

// onLeader runs local on the leader, or sends body to the leader's path,
// looking the leader up again (until LeaderWait) while there is none or
// the node asked does not lead.
func (n *Node) onLeader(ctx context.Context, path string, body []byte, local func() error) error {
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for {
		var err error
		if n.raft.State() == raft.Leader {
			err = local()
		} else if leader, ok := n.leaderMember(); !ok {
			err = ErrNoLeader
		} else {
			err = n.callPeer(ctx, leader, http.MethodPost, path, body, &struct{}{})
		}
		if !errors.Is(err, errNotLeader) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		if err := n.waitForLeader(ctx, deadline); err != nil {
			return err
		}
	}
}

// voters returns the voters of the current configuration.
func (n *Node) voters() (map[raft.ServerID]raft.ServerAddress, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapRaftError(err)
	}
	out := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out[s.ID] = s.Address
		}
	}
	return out, nil
}

func (n *Node) removePeerLocal(id string) error {
	if n.raft.State() != raft.Leader {
		return errNotLeader
	}
	voters, err := n.voters()
	if err != nil {
		return err
	}
	if _, ok := voters[raft.ServerID(id)]; !ok {
		if _, done := n.fsm.RemovedNode(id); done {
			// A retry of a removal that went through.
			return nil
		}
		return fmt.Errorf("remove peer %s: %w", id, ErrUnknownPeer)
	}
	if len(voters) == 1 {
		return fmt.Errorf("remove peer %s: %w", id, ErrLastVoter)
	}
	if id == n.cfg.NodeID {
		return fmt.Errorf("remove peer %s: %w", id, ErrRemoveLeader)
	}
	n.logger.Info("removing voter", "node", id)
	// Recorded before the change, so that no reconcile round, on this
	// leader or a later one, reads the new configuration without it. If
	// leadership is lost in between, the id stays a voter (in the set, but
	// nobody counts it removed) until the operator asks again.
	if err := n.recordRemoval(id); err != nil {
		return err
	}
	if err := n.await(n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout)); err != nil {
		return mapRaftError(err)
	}
	n.notifyRemoved(id)
	return nil
}

func (n *Node) transferLocal(id string) error {
	if n.raft.State() != raft.Leader {
		return errNotLeader
	}
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		voters, err := n.voters()
		if err != nil {
			return err
		}
		addr, ok := voters[raft.ServerID(id)]
		if !ok {
			return fmt.Errorf("transfer leadership to %s: %w", id, ErrUnknownPeer)
		}
		if id == n.cfg.NodeID {
			return nil
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	n.logger.Info("transferring leadership", "to", id)
	err := n.await(f)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrLeadershipLost):
		return mapRaftError(err)
	}
	return fmt.Errorf("%w: %v", ErrTransferFailed, err)
}

func (n *Node) handlePeerState(w http.ResponseWriter, r *http.Request) {
	writeInternal(w, http.StatusOK, n.localPeerState())
}

func (n *Node) handleRemovePeer(w http.ResponseWriter, r *http.Request) {
	var req removePeerRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.ID == "" {
		writeInternal(w, http.StatusBadRequest, internalError{Code: "bad_request"})
		return
	}
	n.writeAdminResult(w, n.removePeerLocal(req.ID))
}

func (n *Node) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var req transferRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeInternal(w, http.StatusBadRequest, internalError{Code: "bad_request"})
		return
	}
	n.writeAdminResult(w, n.transferLocal(req.ID))
}

// adminCodes carries the errors of the peer administration calls across
// a forwarded call; callPeer turns the codes back into these errors.
var adminCodes = []struct {
	err  error
	code string
}{
	{errNotLeader, internalCodeNotLeader},
	{ErrShutdown, internalCodeShutdown},
	{ErrLeadershipLost, internalCodeLeadershipLost},
	{ErrTimeout, internalCodeTimeout},
	{ErrUnknownPeer, internalCodeUnknownPeer},
	{ErrLastVoter, internalCodeLastVoter},
	{ErrRemoveLeader, internalCodeRemoveLeader},
	{ErrTransferFailed, internalCodeTransferFailed},
}

func (n *Node) writeAdminResult(w http.ResponseWriter, err error) {
	if err == nil {
		writeInternal(w, http.StatusOK, struct{}{})
		return
	}
	for _, c := range adminCodes {
		if errors.Is(err, c.err) {
			writeInternal(w, http.StatusConflict, internalError{Code: c.code})
			return
		}
	}
	n.logger.Error("peer administration failed", "error", err)
	writeInternal(w, http.StatusInternalServerError, internalError{Code: "internal"})
}
