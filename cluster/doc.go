// Package cluster makes a Keyzone node a member of its zone: a Raft voter
// (hashicorp/raft over TCP, log and stable store in BoltDB, file
// snapshots) and a member of the gossip pool (hashicorp/memberlist).
//
// # Membership
//
// Gossip only discovers nodes; each advertises {id, zone, api, raft}. With
// BootstrapExpect N, once N nodes of the zone see each other, the one with
// the lowest id bootstraps Raft with all N, after asking the others over
// the internal API that none has Raft state yet. A node with Raft state
// never bootstraps. The leader alone turns what gossip sees into Raft
// configuration: it adds every live member of its zone that is not a
// voter (AddVoter), so a node started later joins by itself.
//
// # Writes
//
// Propose commits a command on the leader (raft.Apply), or, on a follower,
// forwards it to the leader's internal endpoint and returns the leader's
// FSM result. A proposal is sent again only when it surely did not reach
// a leader (a failed dial, an explicit "not leader"); anything else after
// it may have been delivered is reported as ErrLeadershipLost, an outcome
// unknown to be settled by the caller, so a retry never applies a command
// twice. With no known leader, Propose waits up to LeaderWait, then fails
// with ErrNoLeader. A command the FSM could not decode is refused before
// it reaches the log.
//
// # Reads
//
// ConsistentRead implements a read index: the leader answers with its
// applied index, only once it has passed the Barrier of its current term
// and after VerifyLeader confirms it still leads; the asking node then
// waits until it has applied that index.
//
// # Leader tasks
//
// Tasks registered with OnLeader run on the leader only, after its term's
// Barrier, under a context cancelled when leadership is lost or the node
// shuts down.
//
// See DESIGN.md for failure modes and what is not built yet.
package cluster
