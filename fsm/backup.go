package fsm

import "io"

// SnapshotInfo describes a snapshot stream.
type SnapshotInfo struct {
	// Index and Term are those of the last log the state includes.
	Index uint64
	Term  uint64
	Keys  int
	// Tombstones counts the purged keys the state remembers.
	Tombstones int
	// Organizations and Tokens count the tenancy records.
	Organizations int
	Tokens        int
}

// Backup writes the current state to w as a snapshot stream, the bytes
// Persist writes to a Raft snapshot, so that Restore (through
// raft.Restore) can take it back. It copies the state like Snapshot and
// encodes concurrently with Apply.
func (f *FSM) Backup(w io.Writer) (SnapshotInfo, error) {
	snap, err := f.Snapshot()
	if err != nil {
		return SnapshotInfo{}, err
	}
	s := snap.(*fsmSnapshot)
	if err := s.write(w); err != nil {
		return SnapshotInfo{}, err
	}
	return SnapshotInfo{Index: s.header.Index, Term: s.header.Term, Keys: len(s.keys), Tombstones: len(s.tombstones),
		Organizations: len(s.orgs), Tokens: len(s.tokens)}, nil
}

// CheckSnapshot reads a whole snapshot stream as Restore would, for an FSM
// of zone, without changing any state. Raft stops a node whose FSM fails
// to restore a snapshot it was handed, so a backup is checked with this
// before it is handed to Raft.
func CheckSnapshot(r io.Reader, zone string) (SnapshotInfo, error) {
	st, err := readSnapshot(r, zone)
	if err != nil {
		return SnapshotInfo{}, err
	}
	return SnapshotInfo{Index: st.index, Term: st.term, Keys: len(st.keys), Tombstones: len(st.tombstones),
		Organizations: len(st.orgs), Tokens: len(st.tokens)}, nil
}

// RenumberChangesV1 is the payload of CmdRenumberChanges.
type RenumberChangesV1 struct {
	// Above is the sequence the change log moves to before every entry
	// is logged again; the proposer picks one above any sequence the
	// other zones may have applied. A log already at or past it is left
	// alone.
	Above uint64 `json:"above"`
}

// applyRenumberChanges logs every entry of the change log again, in its
// order, with sequences above p.Above. Entries carry the key's current
// state; a pending version waits for the new sequence of its key's entry,
// which the replica zones have not acknowledged yet.
func applyRenumberChanges(s *state, index uint64, p *RenumberChangesV1) Result {
	if p.Above <= s.changeSeq {
		return Result{}
	}
	ids := make([]string, 0, len(s.changes))
	s.bySeq.Ascend(func(se seqEntry) bool {
		ids = append(ids, se.keyID)
		return true
	})
	s.changeSeq = p.Above
	for _, id := range ids {
		e := s.changes[id]
		switch {
		case e.Tombstone != nil:
			s.logTombstone(*e.Tombstone)
			continue
		case e.Organization != nil:
			o := e.Organization
			if cur, ok := s.orgs[o.ID]; ok {
				o = cur
			}
			s.appendChange(ChangeEntry{KeyID: id, Organization: o})
			continue
		case e.Token != nil:
			t := e.Token
			if cur, ok := s.tokens[t.ID]; ok {
				t = cur
			}
			s.appendChange(ChangeEntry{KeyID: id, Token: t})
			continue
		}
		k := e.Key
		if cur, ok := s.keys[id]; ok {
			k = cur
		}
		if k.PendingVersion != 0 {
			c := k.clone()
			c.PendingSeq = s.changeSeq + 1
			s.putKey(c)
			k = c
		}
		s.logChange(k)
	}
	return Result{}
}
