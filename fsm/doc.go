// Package fsm is Keyzone's replicated state machine: the typed, versioned
// commands proposed to Raft, the key lifecycle they drive, snapshots, and
// the read queries the rest of the node serves from local state.
//
// # Determinism
//
// Every node applies the same log and must reach the same state, byte for
// byte. So Apply reads only the entry's payload, its index and term, and
// the current state: never the clock, randomness, I/O, or a map's
// iteration order where it could reach the state or a result. Whatever is
// not deterministic (key ids, timestamps as unix nanoseconds in a Now
// field, wrapped key material, idempotency expiry) is chosen by the
// proposer and carried in the payload. A key's Revision is the index of
// the entry that last changed it.
//
// Apply validates authoritatively: a command that breaks a rule (an
// illegal transition, a stale If-Match revision, a version conflict)
// leaves the state untouched and returns Result{Err: ...}, the same on
// every node. A log entry the node cannot decode, of an unknown mandatory
// type, or of an unknown Version panics: a node that cannot apply the log
// stops rather than diverge. Unknown types with IgnorableCommandFlag are
// skipped. The applied index advances for every entry, refused or not.
//
// # Encoding
//
// A log entry is the JSON of a Command envelope {type, version, payload},
// whose payload is the JSON of one payload struct per (type, version):
// CreateKeyV1, KeyRefV1, UpdateKeyV1, RotateKeyV1, ScheduleDeletionV1,
// PurgeKeyV1, ExpireIdempotencyV1. Command type numbers are append-only
// and never reused. To change a command's meaning, add a type or a
// version and propose it only once every voter supports it.
//
// Snapshots are binary frames (format 2; Restore still reads the JSON of
// format 1), sorted so that equal states give equal bytes; see DESIGN.md
// in this directory.
//
// # Proposers
//
// The keys service (on any node, forwarded to the leader) proposes the
// user's lifecycle commands: CmdCreateKey, CmdUpdateKey, CmdEnableKey,
// CmdDisableKey, CmdProtectKey, CmdUnprotectKey, CmdRotateKey (manual),
// CmdScheduleDeletion and CmdCancelDeletion. The leader's tickers propose
// the time-driven ones, using the queries of this package with the time
// they took: CmdRotateKey with Scheduled set (DueRotations), CmdPurgeKey
// (DuePurges) and CmdExpireIdempotency (HasExpiredIdempotency).
// The tenancy commands (CmdCreateOrganization, CmdUpdateOrganization,
// CmdCreateToken, CmdRevokeToken) are proposed by keys in the home zone
// only; the other zones learn the records from its change log.
//
// # Reads
//
// Queries (Key, ListKeys, DueRotations, ...) are safe for concurrent use
// with Apply. Stored keys are immutable: Apply copies, changes and stores
// a new *Key, so a returned *Key may be kept and read freely but never
// modified. WaitApplied lets a reader wait for the state to reach an index.
package fsm
