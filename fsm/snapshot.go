package fsm

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"

	"github.com/hashicorp/raft"
)

// SnapshotFormat is the version of the snapshot stream Persist writes and
// Restore accepts. A change to the records' meaning needs a new format.
const SnapshotFormat = 1

// Snapshot record types.
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

// snapshotHeader is the first line of a snapshot: the format, and the
// index and term of the last log the state includes.
type snapshotHeader struct {
	Format int    `json:"format"`
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	// ChangeSeq is the head of the zone's change log (multi-zone).
	ChangeSeq uint64 `json:"change_seq,omitempty"`
}

// snapshotRecord is every line after the header. Exactly the field that
// Type names is set. The last record, of type "end", counts the records
// before it, so that a truncated stream is refused rather than restored
// as a smaller state.
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

// Persist writes the snapshot as newline-delimited JSON: the header, the
// keys sorted by id, the tombstones sorted by id, the idempotency records
// sorted by scope, then the end record. Two FSMs that applied the same
// log write identical bytes. On error the sink is cancelled.
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

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(s.header); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(s.keys)) {
		if err := enc.Encode(snapshotRecord{Type: recordKey, Key: s.keys[id]}); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.tombstones)) {
		t := s.tombstones[id]
		if err := enc.Encode(snapshotRecord{Type: recordTombstone, Tombstone: &t}); err != nil {
			return err
		}
	}
	for _, scope := range slices.Sorted(maps.Keys(s.idem)) {
		r := s.idem[scope]
		if err := enc.Encode(snapshotRecord{Type: recordIdempotency, Idempotency: &r}); err != nil {
			return err
		}
	}
	changes := slices.SortedFunc(maps.Values(s.changes), func(a, b ChangeEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	for i := range changes {
		if err := enc.Encode(snapshotRecord{Type: recordChange, Change: &changes[i]}); err != nil {
			return err
		}
	}
	for _, z := range slices.Sorted(maps.Keys(s.repl)) {
		r := s.repl[z]
		if err := enc.Encode(snapshotRecord{Type: recordReplication, Replication: &r}); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.removed)) {
		r := s.removed[id]
		if err := enc.Encode(snapshotRecord{Type: recordRemovedNode, RemovedNode: &r}); err != nil {
			return err
		}
	}
	if err := writeImports(enc, s.imports); err != nil {
		return err
	}
	if err := writeTenancy(enc, s.orgs, s.tokens); err != nil {
		return err
	}
	end := snapshotCounts{Keys: len(s.keys), Tombstones: len(s.tombstones), Idempotency: len(s.idem),
		Changes: len(s.changes), Replication: len(s.repl), RemovedNodes: len(s.removed), Imports: len(s.imports),
		Organizations: len(s.orgs), Tokens: len(s.tokens)}
	if err := enc.Encode(snapshotRecord{Type: recordEnd, Counts: &end}); err != nil {
		return err
	}
	return bw.Flush()
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

func readSnapshot(r io.Reader, zone string) (*state, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	dec.DisallowUnknownFields()

	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Format != SnapshotFormat {
		return nil, fmt.Errorf("unknown snapshot format %d: %w", h.Format, errSnapshot)
	}

	st := newState(zone)
	st.index, st.term, st.changeSeq = h.Index, h.Term, h.ChangeSeq
	orgIDs := make(map[string][]string)
	for {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("truncated before end record: %w", errSnapshot)
			}
			return nil, err
		}
		switch rec.Type {
		case recordKey:
			k := rec.Key
			if k == nil || k.ID == "" || k.Organization == "" {
				return nil, fmt.Errorf("key record without id or organization: %w", errSnapshot)
			}
			switch k.State {
			case KeyStateEnabled, KeyStateDisabled, KeyStatePendingDeletion, KeyStatePendingImport:
			default:
				return nil, fmt.Errorf("key %s in unknown state %q: %w", k.ID, k.State, errSnapshot)
			}
			if err := st.checkNewID(k.ID); err != nil {
				return nil, err
			}
			internKey(k)
			st.keys[k.ID] = k
			orgIDs[k.Organization] = append(orgIDs[k.Organization], k.ID)
		case recordTombstone:
			t := rec.Tombstone
			if t == nil || t.ID == "" {
				return nil, fmt.Errorf("tombstone record without id: %w", errSnapshot)
			}
			if err := st.checkNewID(t.ID); err != nil {
				return nil, err
			}
			t.Organization = intern(t.Organization)
			st.tombstones[t.ID] = *t
		case recordIdempotency:
			r := rec.Idempotency
			if r == nil || r.Scope == "" {
				return nil, fmt.Errorf("idempotency record without scope: %w", errSnapshot)
			}
			if _, dup := st.idem[r.Scope]; dup {
				return nil, fmt.Errorf("duplicate idempotency scope %q: %w", r.Scope, errSnapshot)
			}
			st.idem[r.Scope] = *r
		case recordChange:
			e := rec.Change
			if e == nil || e.Seq == 0 || e.Seq > st.changeSeq || !wellFormedEntry(e) {
				return nil, fmt.Errorf("malformed change record: %w", errSnapshot)
			}
			if _, dup := st.changes[e.KeyID]; dup {
				return nil, fmt.Errorf("duplicate change entry for key %q: %w", e.KeyID, errSnapshot)
			}
			if e.Key != nil {
				internKey(e.Key)
				// Share the live key when the entry is its newest state.
				if live, ok := st.keys[e.KeyID]; ok && live.Revision == e.Key.Revision {
					e.Key = live
				}
			}
			st.changes[e.KeyID] = *e
			st.bySeq.ReplaceOrInsert(seqEntry{seq: e.Seq, keyID: e.KeyID})
		case recordReplication:
			z := rec.Replication
			if z == nil || z.Zone == "" {
				return nil, fmt.Errorf("replication record without zone: %w", errSnapshot)
			}
			z.Zone = intern(z.Zone)
			st.replication[z.Zone] = *z
		case recordRemovedNode:
			r := rec.RemovedNode
			if r == nil || r.NodeID == "" {
				return nil, fmt.Errorf("removed node record without node id: %w", errSnapshot)
			}
			if _, dup := st.removedNodes[r.NodeID]; dup {
				return nil, fmt.Errorf("duplicate removed node %q: %w", r.NodeID, errSnapshot)
			}
			if st.removedNodes == nil {
				st.removedNodes = make(map[string]RemovedNode)
			}
			r.Zone = intern(r.Zone)
			st.removedNodes[r.NodeID] = *r
		case recordImport:
			if err := st.restoreImport(rec.Import); err != nil {
				return nil, err
			}
		case recordOrganization:
			if err := st.restoreOrganization(rec.Organization); err != nil {
				return nil, err
			}
		case recordToken:
			if err := st.restoreToken(rec.Token); err != nil {
				return nil, err
			}
		case recordEnd:
			c := rec.Counts
			got := snapshotCounts{Keys: len(st.keys), Tombstones: len(st.tombstones), Idempotency: len(st.idem),
				Changes: len(st.changes), Replication: len(st.replication), RemovedNodes: len(st.removedNodes), Imports: len(st.imports),
				Organizations: len(st.orgs), Tokens: len(st.tokens)}
			if c == nil || *c != got {
				return nil, fmt.Errorf("end record counts %+v, read %+v: %w", c, got, errSnapshot)
			}
			if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
				return nil, fmt.Errorf("data after end record: %w", errSnapshot)
			}
			for id, k := range st.keys {
				if k.PendingVersion != 0 && !k.IsReplicaIn(zone) {
					st.pending[id] = struct{}{}
				}
				st.count(k)
			}
			for org, ids := range orgIDs {
				sort.Strings(ids) // already sorted when written by Persist
				st.byOrg[org] = buildIndex(ids)
			}
			return st, nil
		default:
			return nil, fmt.Errorf("unknown record type %q: %w", rec.Type, errSnapshot)
		}
	}
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
