package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
)

// SnapshotFormat is the version of the snapshot stream Persist and Backup
// write: the binary frames of snapshot_binary.go. Restore and
// CheckSnapshot read it and format 1 (see ReadsSnapshotFormat). A change
// to the records' meaning needs a new format.
const SnapshotFormat = 2

// snapshotFormatJSON is format 1: newline-delimited JSON, written before
// format 2 and still read, so that snapshots and backups already on disk
// restore.
const snapshotFormatJSON = 1

// Record types of format 1.
const (
	recordKey         = "key"
	recordTombstone   = "tombstone"
	recordIdempotency = "idempotency"
	recordChange      = "change"
	recordReplication = "replication"
	recordRemovedNode = "removed_node"
	recordImport      = "import"
	// Organizations and tokens (since v5), after the imports. A node that
	// predates them refuses such a snapshot (unknown record type) rather
	// than lose them; one without them reads the same as before.
	recordOrganization = "organization"
	recordToken        = "token"
	recordEnd          = "end"
)

// snapshotHeader is the first record of a snapshot: the format, and the
// index and term of the last log the state includes.
type snapshotHeader struct {
	Format int    `json:"format"`
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	// ChangeSeq is the head of the zone's change log (multi-zone).
	ChangeSeq uint64 `json:"change_seq,omitempty"`
}

// snapshotRecord is every line after the header in format 1. Exactly the
// field that Type names is set. The last record, of type "end", counts
// the records before it, so that a truncated stream is refused rather
// than restored as a smaller state.
type snapshotRecord struct {
	Type         string             `json:"type"`
	Key          *Key               `json:"key,omitempty"`
	Tombstone    *Tombstone         `json:"tombstone,omitempty"`
	Idempotency  *IdempotencyRecord `json:"idempotency,omitempty"`
	Change       *ChangeEntry       `json:"change,omitempty"`
	Replication  *ZoneProgress      `json:"replication,omitempty"`
	RemovedNode  *RemovedNode       `json:"removed_node,omitempty"`
	Import       *ImportParams      `json:"import,omitempty"`
	Organization *Organization      `json:"organization,omitempty"`
	Token        *Token             `json:"token,omitempty"`
	Counts       *snapshotCounts    `json:"counts,omitempty"`
}

// snapshotCounts is the end record of both formats.
type snapshotCounts struct {
	Keys        int `json:"keys"`
	Tombstones  int `json:"tombstones"`
	Idempotency int `json:"idempotency"`
	Changes     int `json:"changes,omitempty"`
	Replication int `json:"replication,omitempty"`
	// Omitted when zero, so a snapshot without removed nodes reads the
	// same to a node that predates them.
	RemovedNodes int `json:"removed_nodes,omitempty"`
	Imports      int `json:"imports,omitempty"`
	// Omitted when zero, like removed nodes.
	Organizations int `json:"organizations,omitempty"`
	Tokens        int `json:"tokens,omitempty"`
}

// fsmSnapshot is a point-in-time copy of the state. Its maps are copies;
// the keys they point to are shared, which is safe because stored keys
// are never mutated.
type fsmSnapshot struct {
	keys       map[string]*Key
	tombstones map[string]Tombstone
	idem       map[string]IdempotencyRecord
	changes    map[string]ChangeEntry
	repl       map[string]ZoneProgress
	removed    map[string]RemovedNode
	imports    map[string]ImportParams
	orgs       map[string]*Organization
	tokens     map[string]*Token
	header     snapshotHeader
}

// Snapshot copies the state's maps (not the keys) and returns; the
// encoding happens in Persist, concurrently with Apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	orgs, tokens := f.st.tenancyRecords()
	return &fsmSnapshot{
		orgs:       orgs,
		tokens:     tokens,
		keys:       maps.Clone(f.st.keys),
		tombstones: maps.Clone(f.st.tombstones),
		idem:       maps.Clone(f.st.idem),
		changes:    maps.Clone(f.st.changes),
		repl:       maps.Clone(f.st.replication),
		removed:    maps.Clone(f.st.removedNodes),
		imports:    f.st.importRecords(),
		header: snapshotHeader{Format: SnapshotFormat, Index: f.st.index, Term: f.st.term,
			ChangeSeq: f.st.changeSeq},
	}, nil
}

// Persist writes the snapshot in format 2 (see snapshot_binary.go). Two
// FSMs that applied the same log write identical bytes. On error the sink
// is cancelled.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds only memory.
func (s *fsmSnapshot) Release() {}

// counts returns the end record of the snapshot.
func (s *fsmSnapshot) counts() snapshotCounts {
	return snapshotCounts{Keys: len(s.keys), Tombstones: len(s.tombstones), Idempotency: len(s.idem),
		Changes: len(s.changes), Replication: len(s.repl), RemovedNodes: len(s.removed), Imports: len(s.imports),
		Organizations: len(s.orgs), Tokens: len(s.tokens)}
}

// Restore replaces the whole state with the snapshot read from rc. It
// builds a fresh state, so nothing applied before survives, and swaps it
// in only when the stream was read completely and is valid; on error the
// current state is kept. The applied index becomes the header's index and
// WaitApplied callers are woken. Restore does not close rc (raft does).
func (f *FSM) Restore(rc io.ReadCloser) error {
	st, err := readSnapshot(rc, f.zone)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.advance(st.index)
	f.logger.Info("restored snapshot", "index", st.index, "term", st.term,
		"keys", len(st.keys), "tombstones", len(st.tombstones))
	return nil
}

// errSnapshot marks a malformed snapshot stream.
var errSnapshot = errors.New("malformed snapshot")

// ReadsSnapshotFormat reports whether Restore and CheckSnapshot read
// snapshot streams of the given format: the one Persist writes, and the
// JSON of format 1, which snapshots and backups taken before format 2
// hold.
func ReadsSnapshotFormat(format int) bool {
	return format == SnapshotFormat || format == snapshotFormatJSON
}

// readSnapshot reads a stream of either format, told apart by its first
// bytes: format 1 is JSON and starts with '{', format 2 with a magic
// prefix that no JSON document starts with.
func readSnapshot(r io.Reader, zone string) (*state, error) {
	br := bufio.NewReaderSize(r, snapshotBufferSize)
	if p, _ := br.Peek(len(snapshotMagic) + 1); bytes.HasPrefix(p, []byte(snapshotMagic)) {
		if len(p) <= len(snapshotMagic) || p[len(snapshotMagic)] != SnapshotFormat {
			return nil, fmt.Errorf("unknown snapshot format after the magic prefix: %w", errSnapshot)
		}
		return readBinarySnapshot(br, zone)
	}
	return readJSONSnapshot(br, zone)
}

// readJSONSnapshot reads format 1: newline-delimited JSON, a header line
// then one snapshotRecord a line.
func readJSONSnapshot(r io.Reader, zone string) (*state, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()

	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w: %w", err, errSnapshot)
	}
	if h.Format != snapshotFormatJSON {
		return nil, fmt.Errorf("unknown snapshot format %d: %w", h.Format, errSnapshot)
	}
	rs := newRestoring(zone, h)
	for {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("truncated before end record: %w", errSnapshot)
			}
			return nil, fmt.Errorf("%w: %w", err, errSnapshot)
		}
		var err error
		switch rec.Type {
		case recordKey:
			if rec.Key != nil {
				internKey(rec.Key)
			}
			err = rs.key(rec.Key)
		case recordTombstone:
			err = rs.tombstone(rec.Tombstone)
		case recordIdempotency:
			err = rs.idempotency(rec.Idempotency)
		case recordChange:
			if rec.Change != nil && rec.Change.Key != nil {
				internKey(rec.Change.Key)
			}
			err = rs.change(rec.Change)
		case recordReplication:
			err = rs.replication(rec.Replication)
		case recordRemovedNode:
			err = rs.removedNode(rec.RemovedNode)
		case recordImport:
			err = rs.st.restoreImport(rec.Import)
		case recordOrganization:
			err = rs.st.restoreOrganization(rec.Organization)
		case recordToken:
			err = rs.st.restoreToken(rec.Token)
		case recordEnd:
			if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
				return nil, fmt.Errorf("data after end record: %w", errSnapshot)
			}
			return rs.end(rec.Counts)
		default:
			err = fmt.Errorf("unknown record type %q: %w", rec.Type, errSnapshot)
		}
		if err != nil {
			return nil, err
		}
	}
}

// restoring is a state being read from a snapshot stream, one record at
// a time. Both formats hand their records to its checks, so a stream is
// accepted or refused for the same reasons whatever its format.
type restoring struct {
	st *state
	// orgKeys lists the key ids of each organization in stream order.
	orgKeys map[string][]string
}

func newRestoring(zone string, h snapshotHeader) *restoring {
	st := newState(zone)
	st.index, st.term, st.changeSeq = h.Index, h.Term, h.ChangeSeq
	return &restoring{st: st, orgKeys: make(map[string][]string)}
}

// key adds a live key, whose strings the caller has interned.
func (r *restoring) key(k *Key) error {
	if k == nil || k.ID == "" || k.Organization == "" {
		return fmt.Errorf("key record without id or organization: %w", errSnapshot)
	}
	switch k.State {
	case KeyStateEnabled, KeyStateDisabled, KeyStatePendingDeletion, KeyStatePendingImport:
	default:
		return fmt.Errorf("key %s in unknown state %q: %w", k.ID, k.State, errSnapshot)
	}
	if err := r.st.checkNewID(k.ID); err != nil {
		return err
	}
	r.st.keys[k.ID] = k
	r.orgKeys[k.Organization] = append(r.orgKeys[k.Organization], k.ID)
	return nil
}

func (r *restoring) tombstone(t *Tombstone) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("tombstone record without id: %w", errSnapshot)
	}
	if err := r.st.checkNewID(t.ID); err != nil {
		return err
	}
	t.Organization = intern(t.Organization)
	r.st.tombstones[t.ID] = *t
	return nil
}

func (r *restoring) idempotency(rec *IdempotencyRecord) error {
	if rec == nil || rec.Scope == "" {
		return fmt.Errorf("idempotency record without scope: %w", errSnapshot)
	}
	if _, dup := r.st.idem[rec.Scope]; dup {
		return fmt.Errorf("duplicate idempotency scope %q: %w", rec.Scope, errSnapshot)
	}
	r.st.idem[rec.Scope] = *rec
	return nil
}

// change adds a change log entry, whose key's strings the caller has
// interned. An entry holding the newest state of a live key shares it.
func (r *restoring) change(e *ChangeEntry) error {
	st := r.st
	if e == nil || e.Seq == 0 || e.Seq > st.changeSeq || !wellFormedEntry(e) {
		return fmt.Errorf("malformed change record: %w", errSnapshot)
	}
	if _, dup := st.changes[e.KeyID]; dup {
		return fmt.Errorf("duplicate change entry for key %q: %w", e.KeyID, errSnapshot)
	}
	if e.Key != nil {
		if live, ok := st.keys[e.KeyID]; ok && live.Revision == e.Key.Revision {
			e.Key = live
		}
	}
	st.changes[e.KeyID] = *e
	st.bySeq.ReplaceOrInsert(seqEntry{seq: e.Seq, keyID: e.KeyID})
	return nil
}

func (r *restoring) replication(z *ZoneProgress) error {
	if z == nil || z.Zone == "" {
		return fmt.Errorf("replication record without zone: %w", errSnapshot)
	}
	z.Zone = intern(z.Zone)
	r.st.replication[z.Zone] = *z
	return nil
}

func (r *restoring) removedNode(n *RemovedNode) error {
	st := r.st
	if n == nil || n.NodeID == "" {
		return fmt.Errorf("removed node record without node id: %w", errSnapshot)
	}
	if _, dup := st.removedNodes[n.NodeID]; dup {
		return fmt.Errorf("duplicate removed node %q: %w", n.NodeID, errSnapshot)
	}
	if st.removedNodes == nil {
		st.removedNodes = make(map[string]RemovedNode)
	}
	n.Zone = intern(n.Zone)
	st.removedNodes[n.NodeID] = *n
	return nil
}

// end checks the end record's counts against the records read, so that
// a stream cut short is refused, and builds the indexes of the state.
func (r *restoring) end(c *snapshotCounts) (*state, error) {
	st := r.st
	got := snapshotCounts{Keys: len(st.keys), Tombstones: len(st.tombstones), Idempotency: len(st.idem),
		Changes: len(st.changes), Replication: len(st.replication), RemovedNodes: len(st.removedNodes), Imports: len(st.imports),
		Organizations: len(st.orgs), Tokens: len(st.tokens)}
	if c == nil || *c != got {
		return nil, fmt.Errorf("end record counts %+v, read %+v: %w", c, got, errSnapshot)
	}
	for id, k := range st.keys {
		if k.PendingVersion != 0 && !k.IsReplicaIn(st.zone) {
			st.pending[id] = struct{}{}
		}
		st.count(k)
		st.due.set(k, st.zone)
	}
	for org, ids := range r.orgKeys {
		slices.Sort(ids) // already sorted when written by Persist
		st.byOrg[org] = buildIndex(ids)
	}
	return st, nil
}

// checkNewID refuses an id seen before in the stream, as key or tombstone.
func (s *state) checkNewID(id string) error {
	_, live := s.keys[id]
	_, dead := s.tombstones[id]
	if live || dead {
		return fmt.Errorf("duplicate key id %q: %w", id, errSnapshot)
	}
	return nil
}
