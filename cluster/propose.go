package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/keyzone/keyzone/fsm"
)

// Internal node-to-node routes, mounted by the API under /v1/internal.
const (
	internalPropose   = "/v1/internal/propose"
	internalReadIndex = "/v1/internal/read-index"
	internalRaftState = "/v1/internal/raft-state"
	maxCommandBytes   = 4 << 20
)

// errNotLeader is internal: the node asked to act as leader is not (any
// more); the caller looks the leader up again and retries.
var errNotLeader = errors.New("cluster: not the leader")

// Propose commits cmd through Raft and returns the FSM's result and the
// log index. Any node accepts a proposal: a follower forwards it to the
// leader. With no known leader it waits up to LeaderWait, then fails
// with ErrNoLeader. ErrLeadershipLost means the outcome is unknown. A
// command the FSM could not decode is refused with fsm.ErrInvalidCommand
// before it reaches the log.
//
// A proposal is sent again only when it surely did not reach a leader: a
// failed dial, or a node answering that it does not lead. Anything after
// the leader may have received it is reported, never retried, so that no
// retry applies a command twice.
func (n *Node) Propose(ctx context.Context, cmd fsm.Command) (fsm.Result, uint64, error) {
	if err := fsm.CheckCommand(cmd); err != nil {
		return fsm.Result{}, 0, err
	}
	data, err := cmd.Encode()
	if err != nil {
		return fsm.Result{}, 0, err
	}
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for {
		res, idx, err := n.proposeOnce(ctx, data)
		if !errors.Is(err, errNotLeader) && !errors.Is(err, ErrNoLeader) {
			return res, idx, err
		}
		if err := n.waitForLeader(ctx, deadline); err != nil {
			return fsm.Result{}, 0, err
		}
	}
}

func (n *Node) proposeOnce(ctx context.Context, data []byte) (fsm.Result, uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.applyLocal(data)
	}
	leader, ok := n.leaderMember()
	if !ok {
		return fsm.Result{}, 0, ErrNoLeader
	}
	return n.forward(ctx, leader, data)
}

// errShutdownWhileCommitting: raft answers ErrRaftShutdown even for an
// entry it has already committed (and a wait abandoned at shutdown knows
// nothing either), so the outcome is unknown.
var errShutdownWhileCommitting = fmt.Errorf("%w: the node shut down", ErrLeadershipLost)

func (n *Node) applyLocal(data []byte) (fsm.Result, uint64, error) {
	if n.ctx.Err() != nil || n.raft.State() == raft.Shutdown {
		// Never handed to raft: safe to send elsewhere.
		return fsm.Result{}, 0, ErrShutdown
	}
	p := n.applyGated(data)
	select {
	case <-p.done:
	default:
		// The node shut down first.
		if n.gate.abandon(p) {
			return fsm.Result{}, 0, ErrShutdown
		}
		return fsm.Result{}, 0, errShutdownWhileCommitting
	}
	f := p.future
	if err := p.err; err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return fsm.Result{}, 0, errShutdownWhileCommitting
		}
		return fsm.Result{}, 0, mapRaftError(err)
	}
	res, ok := f.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, 0, fmt.Errorf("cluster: unexpected fsm response %T", f.Response())
	}
	return res, f.Index(), nil
}

// await waits for a raft future, or until the node shuts down. Raft may
// never answer a future that is in flight when it shuts down
// (hashicorp/raft#498); the wait then ends with raft.ErrRaftShutdown and
// the goroutine waiting on the abandoned future stays until raft answers.
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.ctx.Done():
		return raft.ErrRaftShutdown
	}
}

func mapRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it reached the log: safe to retry elsewhere.
		return errNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return fmt.Errorf("raft apply: %w", err)
}

// waitForLeader sleeps a short jittered interval, or fails once the
// deadline passes without a leader.
func (n *Node) waitForLeader(ctx context.Context, deadline time.Time) error {
	if time.Now().After(deadline) {
		return ErrNoLeader
	}
	d := 50*time.Millisecond + rand.N(50*time.Millisecond)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrShutdown
	case <-time.After(d):
		return nil
	}
}

// leaderMember returns the current leader as the pool advertises it.
func (n *Node) leaderMember() (Member, bool) {
	_, id := n.raft.LeaderWithID()
	p := n.pool.Load()
	if id == "" || p == nil {
		return Member{}, false
	}
	return p.member(string(id))
}

type proposeResponse struct {
	Index  uint64     `json:"index"`
	Result fsm.Result `json:"result"`
}

type internalError struct {
	Code string `json:"code"`
}

const (
	internalCodeNotLeader      = "not_leader"
	internalCodeLeadershipLost = "leadership_lost"
	internalCodeTimeout        = "timeout"
	internalCodeShutdown       = "shutdown"
)

func (n *Node) forward(ctx context.Context, leader Member, data []byte) (fsm.Result, uint64, error) {
	var out proposeResponse
	if err := n.callPeer(ctx, leader, http.MethodPost, internalPropose, data, &out); err != nil {
		return fsm.Result{}, 0, err
	}
	return out.Result, out.Index, nil
}

// callPeer sends an internal request to another node (the leader, but
// for the bootstrap question) and decodes its answer; errors the node
// reports come back as this package's errors. errNotLeader (look the
// leader up again and retry) is returned only when retrying is safe: the
// request was never delivered (the dial failed), the node said it does
// not lead, or the request is a GET, which changes nothing. Any other
// failure of a proposal after it may have been delivered is
// ErrLeadershipLost: the outcome is unknown.
func (n *Node) callPeer(ctx context.Context, peer Member, method, path string, body []byte, out any) error {
	maybeDelivered := ErrLeadershipLost
	if method == http.MethodGet {
		maybeDelivered = errNotLeader
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(peer.APIAddress, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("call %s: %w", peer.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+n.cfg.InternalToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.logger.Debug("internal call failed", "node", peer.ID, "path", path, "error", err)
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			// Never delivered: the leader may have just died, look it up again.
			return errNotLeader
		}
		return maybeDelivered
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCommandBytes))
	if err != nil {
		// The node answered, so it got the request; its answer is lost.
		n.logger.Debug("reading internal answer failed", "node", peer.ID, "path", path, "error", err)
		return maybeDelivered
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			n.logger.Warn("malformed internal answer", "node", peer.ID, "path", path, "error", err)
			return maybeDelivered
		}
		return nil
	}
	var ie internalError
	_ = json.Unmarshal(b, &ie)
	switch ie.Code {
	case internalCodeNotLeader, internalCodeShutdown:
		// Refused before raft got it (handlePropose answers "shutdown"
		// only then).
		return errNotLeader
	case internalCodeLeadershipLost:
		return ErrLeadershipLost
	case internalCodeTimeout:
		return ErrTimeout
	}
	for _, c := range adminCodes {
		if c.code == ie.Code {
			return c.err
		}
	}
	return fmt.Errorf("call %s: status %d", peer.ID, resp.StatusCode)
}

// InternalHandler serves the node-to-node routes. The caller mounts it
// behind authentication; it checks the internal token itself too, so a
// mistake in mounting can't open it.
func (n *Node) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+internalPropose, n.handlePropose)
	mux.HandleFunc("GET "+internalReadIndex, n.handleReadIndex)
	mux.HandleFunc("GET "+internalRaftState, n.handleRaftState)
	mux.HandleFunc("GET "+internalPeerState, n.handlePeerState)
	mux.HandleFunc("POST "+internalRemovePeer, n.handleRemovePeer)
	mux.HandleFunc("POST "+internalTransfer, n.handleTransfer)
	mux.HandleFunc(internalRemovedNode, n.handleRemovedNode)
	mux.HandleFunc("GET "+internalSnapshot, n.handleSnapshot)
	mux.HandleFunc("POST "+internalSnapshotRestore, n.handleSnapshotRestore)
	return n.requireInternalToken(mux)
}

func (n *Node) requireInternalToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || n.cfg.InternalToken == "" || subtle.ConstantTimeCompare([]byte(got), []byte(n.cfg.InternalToken)) != 1 {
			writeInternal(w, http.StatusUnauthorized, internalError{Code: "unauthorized"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (n *Node) handlePropose(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCommandBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeInternal(w, http.StatusRequestEntityTooLarge, internalError{Code: "too_large"})
			return
		}
		writeInternal(w, http.StatusBadRequest, internalError{Code: "bad_request"})
		return
	}
	// Forwarded bytes come from the network: the FSM must be able to
	// decode them, envelope and payload, as Apply will.
	if err := fsm.CheckEntry(data); err != nil {
		n.logger.Debug("refused forwarded command", "error", err)
		writeInternal(w, http.StatusBadRequest, internalError{Code: "bad_command"})
		return
	}
	if n.raft.State() != raft.Leader {
		writeInternal(w, http.StatusConflict, internalError{Code: internalCodeNotLeader})
		return
	}
	res, idx, err := n.applyLocal(data)
	switch {
	case err == nil:
		writeInternal(w, http.StatusOK, proposeResponse{Index: idx, Result: res})
	case errors.Is(err, errNotLeader):
		writeInternal(w, http.StatusConflict, internalError{Code: internalCodeNotLeader})
	case errors.Is(err, ErrLeadershipLost):
		writeInternal(w, http.StatusServiceUnavailable, internalError{Code: internalCodeLeadershipLost})
	case errors.Is(err, ErrTimeout):
		writeInternal(w, http.StatusGatewayTimeout, internalError{Code: internalCodeTimeout})
	case errors.Is(err, ErrShutdown):
		writeInternal(w, http.StatusServiceUnavailable, internalError{Code: internalCodeShutdown})
	default:
		n.logger.Error("apply forwarded command", "error", err)
		writeInternal(w, http.StatusInternalServerError, internalError{Code: "internal"})
	}
}

type raftStateResponse struct {
	HasState bool `json:"has_state"`
}

// handleRaftState tells a node about to bootstrap whether this one
// already belongs to a Raft configuration.
func (n *Node) handleRaftState(w http.ResponseWriter, r *http.Request) {
	writeInternal(w, http.StatusOK, raftStateResponse{HasState: n.hasRaftState()})
}

type readIndexResponse struct {
	Index uint64 `json:"index"`
}

func (n *Node) handleReadIndex(w http.ResponseWriter, r *http.Request) {
	idx, err := n.leaderReadIndex()
	if err != nil {
		writeInternal(w, http.StatusConflict, internalError{Code: internalCodeNotLeader})
		return
	}
	writeInternal(w, http.StatusOK, readIndexResponse{Index: idx})
}

// leaderReadIndex returns an index that covers every write acknowledged
// before the call: after the leadership Barrier, every acknowledged
// write has been applied to the leader's FSM before its ack, so the
// FSM's applied index suffices once VerifyLeader confirms this node
// still leads.
func (n *Node) leaderReadIndex() (uint64, error) {
	if !n.isLeaderReady() {
		return 0, errNotLeader
	}
	idx := n.fsm.AppliedIndex()
	if err := n.await(n.raft.VerifyLeader()); err != nil {
		return 0, errNotLeader
	}
	return idx, nil
}

// ConsistentRead returns once this node's state reflects every write
// acknowledged anywhere in the zone before the call (a read index from
// the leader, then waiting to apply up to it), so a read that follows
// sees them. It fails with ErrNoLeader if no leader answers within
// LeaderWait.
func (n *Node) ConsistentRead(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for {
		idx, err := n.readIndex(ctx)
		if err == nil {
			return n.fsm.WaitApplied(ctx, idx)
		}
		if !errors.Is(err, errNotLeader) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		if err := n.waitForLeader(ctx, deadline); err != nil {
			return err
		}
	}
}

func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.leaderReadIndex()
	}
	leader, ok := n.leaderMember()
	if !ok {
		return 0, ErrNoLeader
	}
	var out readIndexResponse
	if err := n.callPeer(ctx, leader, http.MethodGet, internalReadIndex, nil, &out); err != nil {
		return 0, err
	}
	return out.Index, nil
}

func writeInternal(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WaitApplied returns once this node has applied the log up to index
// (a client's session index), or ErrNotCaughtUp when ctx ends first.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	if err := n.fsm.WaitApplied(ctx, index); err != nil {
		return ErrNotCaughtUp
	}
	return nil
}
