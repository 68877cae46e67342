package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// FSM is Keyzone's replicated state machine; it implements raft.FSM.
//
// Raft calls Apply, Snapshot and Restore from one goroutine. Every query
// method is safe for concurrent use with them: queries take a read lock,
// and the *Key values they return are never mutated after being stored
// (Apply copies, changes and stores a new pointer), so callers may keep
// and read them without locks but must not modify them.
type FSM struct {
	logger hclog.Logger
	// zone is the zone this state machine runs in ("" for a single-zone
	// one). It is configuration, the same on every node of the zone, and
	// decides which keys are primaries here and which are replicas.
	zone string

	mu sync.RWMutex
	st *state // replaced whole by Restore

	// applied mirrors st.index for lock-free reads and WaitApplied.
	applied atomic.Uint64

	// waitMu guards waitCh, which is created by the first waiter and
	// closed (then dropped) when the applied index next advances, so an
	// Apply without waiters allocates nothing.
	waitMu sync.Mutex
	waitCh chan struct{}
}

// state is everything a snapshot holds. Restore builds a fresh one and
// swaps it in, so no leftover of the previous state survives.
type state struct {
	keys       map[string]*Key              // live keys by id
	byOrg      map[string]*idIndex          // ids of live keys per organization
	tombstones map[string]Tombstone         // purged key ids, kept forever
	idem       map[string]IdempotencyRecord // by scope
	index      uint64                       // index of the last applied (or restored) log
	term       uint64                       // term of that log

	// Multi-zone replication (see zones.go).
	zone        string                  // copy of FSM.zone, for the apply functions
	changeSeq   uint64                  // head of this zone's change log
	changes     map[string]ChangeEntry  // compacted change log: newest entry per key id
	bySeq       *btree.BTreeG[seqEntry] // the same entries ordered by sequence
	replication map[string]ZoneProgress // per remote zone
	pending     map[string]struct{}     // primary keys with a pending version
	due         dueIndex                // keys by the time the scheduler acts on them (due.go)

	removedNodes map[string]RemovedNode  // by node id, made on first use (nodes.go)
	imports      map[string]ImportParams // by key id, made on first use (import.go)

	tenancy // organizations, tokens, quota counter (tenancy_apply.go)
}

func newState(zone string) *state {
	return &state{
		keys:        make(map[string]*Key),
		byOrg:       make(map[string]*idIndex),
		tombstones:  make(map[string]Tombstone),
		idem:        make(map[string]IdempotencyRecord),
		zone:        zone,
		changes:     make(map[string]ChangeEntry),
		bySeq:       newSeqIndex(),
		replication: make(map[string]ZoneProgress),
		pending:     make(map[string]struct{}),
		due:         newDueIndex(),
		tenancy:     newTenancy(),
	}
}

// Option configures an FSM.
type Option func(*FSM)

// WithZone makes the FSM multi-zone aware: keys whose primary zone is zone
// are primaries (their changes go to the change log, their rotations are
// two-phase when they have replicas), the others are replicas that only
// the change log of their primary zone changes.
func WithZone(zone string) Option { return func(f *FSM) { f.zone = zone } }

// New returns an empty FSM logging under logger.Named("fsm").
func New(logger hclog.Logger, opts ...Option) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &FSM{logger: logger.Named("fsm")}
	for _, o := range opts {
		o(f)
	}
	f.st = newState(f.zone)
	return f
}

// Zone returns the zone the FSM runs in ("" when single-zone).
func (f *FSM) Zone() string { return f.zone }

var _ raft.FSM = (*FSM)(nil)

// applyFunc changes the state for one decoded command. It runs under the
// write lock and returns the command's Result.
type applyFunc func(s *state, index uint64) Result

// Apply applies one committed log entry and returns a Result value (never
// a pointer, never nil) for every entry.
//
// Apply is deterministic: it reads only l.Data, l.Index, l.Term and the
// state; never the clock, randomness or I/O. A refused command leaves the
// state untouched and returns Result{Err: ...}; the applied index advances
// for every entry, refused or not. An entry this node cannot decode, of an
// unknown mandatory type or of an unknown version panics: a node that
// cannot apply the log stops rather than diverge.
func (f *FSM) Apply(l *raft.Log) interface{} {
	var apply applyFunc
	if l.Type == raft.LogCommand {
		// Decode outside the lock so that queries are held up only by
		// the change itself.
		cmd, decoded, err := decodeEntry(l.Data)
		if err != nil {
			f.fail(l, cmd, err)
		}
		apply = decoded
	}

	f.mu.Lock()
	res := Result{}
	if apply != nil {
		res = apply(f.st, l.Index)
	}
	f.st.index, f.st.term = l.Index, l.Term
	f.mu.Unlock()
	f.advance(l.Index)
	return res
}

// fail stops the node on an entry it cannot apply.
func (f *FSM) fail(l *raft.Log, cmd Command, err error) {
	f.logger.Error("cannot apply log entry", "index", l.Index, "term", l.Term,
		"type", cmd.Type, "version", cmd.Version, "error", err)
	panic(fmt.Sprintf("fsm: cannot apply log index %d (type %d, version %d): %v",
		l.Index, cmd.Type, cmd.Version, err))
}

// decodePayload returns the change a command makes. An unknown type with
// IgnorableCommandFlag yields (nil, nil): nothing changes.
func decodePayload(c Command) (applyFunc, error) {
	decode := decoderFor(c.Type)
	if decode == nil {
		if c.Type&IgnorableCommandFlag != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown command type %d", c.Type)
	}
	if c.Version != CommandVersion1 {
		return nil, fmt.Errorf("unknown version %d of command type %d", c.Version, c.Type)
	}
	return decode(c.Payload)
}

// decoderFor returns the payload decoder of a command type, or nil for a
// type this node does not know. A new type is added here and in Apply's
// tests (TestFSM_Commands_CoverEveryType).
func decoderFor(t CommandType) func(json.RawMessage) (applyFunc, error) {
	switch t {
	case CmdCreateKey:
		return decodeCreateKey
	case CmdUpdateKey:
		return binder(applyUpdateKey)
	case CmdEnableKey:
		return binder(applyEnableKey)
	case CmdDisableKey:
		return binder(applyDisableKey)
	case CmdProtectKey:
		return binder(applyProtectKey)
	case CmdUnprotectKey:
		return binder(applyUnprotectKey)
	case CmdRotateKey:
		return binder(applyRotateKey)
	case CmdScheduleDeletion:
		return binder(applyScheduleDeletion)
	case CmdCancelDeletion:
		return binder(applyCancelDeletion)
	case CmdPurgeKey:
		return binder(applyPurgeKey)
	case CmdExpireIdempotency:
		return binder(applyExpireIdempotency)
	case CmdApplyChanges:
		return binder(applyChanges)
	case CmdReplicaAck:
		return binder(applyReplicaAck)
	case CmdSetReplicaZones:
		return binder(applySetReplicaZones)
	case CmdUpdatePrimary:
		return binder(applyUpdatePrimary)
	case CmdRemoveNode:
		return binder(applyRemoveNode)
	case CmdRenumberChanges:
		return binder(applyRenumberChanges)
	case CmdSetImportParams:
		return binder(applySetImportParams)
	case CmdImportKeyMaterial:
		return binder(applyImportKeyMaterial)
	case CmdCreateOrganization:
		return binder(applyCreateOrganization)
	case CmdUpdateOrganization:
		return binder(applyUpdateOrganization)
	case CmdCreateToken:
		return binder(applyCreateToken)
	case CmdRevokeToken:
		return binder(applyRevokeToken)
	}
	return nil
}

// binder returns a decoder of payloads of type P that binds them to fn.
func binder[P any](fn func(*state, uint64, *P) Result) func(json.RawMessage) (applyFunc, error) {
	return func(raw json.RawMessage) (applyFunc, error) {
		if len(raw) == 0 || string(raw) == "null" {
			return nil, errors.New("missing payload")
		}
		p := new(P)
		if err := json.Unmarshal(raw, p); err != nil {
			return nil, fmt.Errorf("decode payload: %w", err)
		}
		return func(s *state, index uint64) Result { return fn(s, index, p) }, nil
	}
}

// advance publishes a new applied index and wakes WaitApplied callers.
func (f *FSM) advance(index uint64) {
	f.applied.Store(index)
	f.waitMu.Lock()
	if f.waitCh != nil {
		close(f.waitCh)
		f.waitCh = nil
	}
	f.waitMu.Unlock()
}

// AppliedIndex returns the index of the last log applied, or of the
// snapshot last restored.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitApplied blocks until AppliedIndex() >= index, or returns ctx.Err()
// when ctx is done first. State read after it returns nil reflects at
// least that index.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.waitMu.Lock()
		if f.applied.Load() >= index {
			f.waitMu.Unlock()
			return nil
		}
		if f.waitCh == nil {
			f.waitCh = make(chan struct{})
		}
		ch := f.waitCh
		f.waitMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Key returns the live (not purged) key with id.
func (f *FSM) Key(id string) (*Key, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, ok := f.st.keys[id]
	return k, ok
}

// IsTombstoned reports whether the key id was purged.
func (f *FSM) IsTombstoned(id string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.st.tombstones[id]
	return ok
}

// Tombstone returns the tombstone of a purged key.
func (f *FSM) Tombstone(id string) (Tombstone, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.tombstones[id]
	return t, ok
}

// KeyCount returns the number of live keys.
func (f *FSM) KeyCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.keys)
}

// ListQuery selects keys for ListKeys. Organization is required; the other
// filters apply when non-zero: Name matches exactly, Tag must be one of
// the key's tags, State must equal the key's state. Only ids greater than
// AfterID (the page token) are returned, at most Limit of them; Limit <= 0
// means no limit.
type ListQuery struct {
	Organization string
	Name         string
	Tag          string
	State        KeyState
	AfterID      string
	Limit        int
}

// ListKeys returns the live keys matching q, sorted by id, and whether
// more matches follow the last one returned. It seeks to AfterID in a
// per-organization ordered index, so a page costs O(log n) plus the keys
// it scans; a selective filter may scan the organization's remaining keys.
func (f *FSM) ListKeys(q ListQuery) (keys []*Key, more bool) {
	if q.Organization == "" {
		return nil, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	x := f.st.byOrg[q.Organization]
	if x == nil {
		return nil, false
	}
	x.ascendAfter(q.AfterID, func(id string) bool {
		k := f.st.keys[id]
		if (q.Name != "" && k.Name != q.Name) ||
			(q.Tag != "" && !slices.Contains(k.Tags, q.Tag)) ||
			(q.State != "" && k.State != q.State) {
			return true
		}
		if q.Limit > 0 && len(keys) == q.Limit {
			more = true
			return false
		}
		keys = append(keys, k)
		return true
	})
	return keys, more
}

// DueRotations returns the enabled keys with an automatic rotation policy
// whose NextRotationAt is not after now, sorted by id. The leader's ticker
// proposes a scheduled CmdRotateKey for each. Disabled keys are skipped:
// rotation needs an enabled key (see applyRotateKey).
func (f *FSM) DueRotations(now int64) []*Key { return f.dueKeys(dueRotation, now) }

// DuePurges returns the keys pending deletion whose DeletionAt is not
// after now, sorted by id. The leader's ticker proposes CmdPurgeKey for each.
func (f *FSM) DuePurges(now int64) []*Key { return f.dueKeys(duePurge, now) }

// dueKeys returns the keys of kind due at or before now, sorted by id.
func (f *FSM) dueKeys(kind dueKind, now int64) []*Key {
	f.mu.RLock()
	ids := f.st.due.due(kind, now)
	out := make([]*Key, 0, len(ids))
	for _, id := range ids {
		if k, ok := f.st.keys[id]; ok {
			out = append(out, k)
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// IdempotencyScope returns the scope under which an idempotent operation
// is remembered: org + "/" + op + "/" + token. Create uses op "create";
// rotate uses "rotate/" + key id.
func IdempotencyScope(org, op, token string) string {
	return org + "/" + op + "/" + token
}

// Idempotency returns the record stored under scope. It may have expired
// (ExpiresAt in the past) without having been dropped yet by
// CmdExpireIdempotency; Apply treats such a record as absent.
func (f *FSM) Idempotency(scope string) (IdempotencyRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.idem[scope]
	return r, ok
}

// HasExpiredIdempotency reports whether some record has ExpiresAt <= now,
// so that the leader's ticker proposes CmdExpireIdempotency only when it
// would drop something. It scans the records.
func (f *FSM) HasExpiredIdempotency(now int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, r := range f.st.idem {
		if r.ExpiresAt <= now {
			return true
		}
	}
	return false
}
