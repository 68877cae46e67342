package cluster

import "errors"

// Errors of proposals and consistent reads. ErrLeadershipLost is an
// unknown outcome: the command may or may not have been committed, so
// callers retry only idempotent commands.
var (
	ErrNoLeader             = errors.New("cluster: no leader")
	ErrTimeout              = errors.New("cluster: timed out waiting for raft")
	ErrLeadershipLost error = outcomeUnknownError("cluster: leadership lost while committing")
	ErrShutdown             = errors.New("cluster: node is shutting down")
	ErrNotCaughtUp          = errors.New("cluster: node has not applied the requested index")
)

// NodeStatus describes one voter of the zone.
type NodeStatus struct {
	ID          string `json:"id"`
	APIAddress  string `json:"api_address"`
	RaftAddress string `json:"raft_address"`
	State       string `json:"state"` // leader, follower, or unreachable
}

// Status is a node's view of its zone.
type Status struct {
	Zone         string       `json:"zone"`
	NodeID       string       `json:"node_id"`
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	Nodes        []NodeStatus `json:"nodes"`
	AppliedIndex uint64       `json:"applied_index"`
	CommitIndex  uint64       `json:"commit_index"`
}

// outcomeUnknownError marks errors after which a proposal may or may not
// have been committed, for callers that can settle the question by
// reading the state again.
type outcomeUnknownError string

func (e outcomeUnknownError) Error() string { return string(e) }

// OutcomeUnknown reports that the proposal may have been committed.
func (e outcomeUnknownError) OutcomeUnknown() bool { return true }
