// Package keys holds Keyzone's use cases (keys.Service): it validates
// requests, decides everything non-deterministic (key ids, times, fresh
// version material wrapped under the root key) and proposes typed commands
// through a Proposer (the zone's Raft group), and it serves encrypt,
// decrypt, data keys and re-encrypt from the node's local state without a
// Raft round trip.
//
// Consistency: lifecycle calls are linearizable (Raft). Admin reads first
// catch up with every write acknowledged in the zone (a read index from the
// leader) unless the caller asks for a stale read. Crypto reads local
// state; when a key or version is unknown locally it catches up once,
// within CatchUpWait, before answering "not found", so a key created or
// rotated through another node is usable at once.
//
// The leader runs LeaderTask: automatic rotation when next_rotation_at has
// passed, purge when a deletion window has passed, expiry of idempotency
// records. Each is a command carrying the leader's clock reading, and
// Apply checks it again, so Apply never reads a clock itself.
package keys
