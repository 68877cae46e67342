package fsm

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/google/btree"
)

// ZoneProgress is this zone's replication state with one remote zone.
type ZoneProgress struct {
	Zone string `json:"zone"`
	// Applied is the sequence of Zone's change log this zone has applied
	// (this zone holds replicas of Zone's primaries).
	Applied uint64 `json:"applied"`
	// Acked is the sequence of this zone's change log that Zone has
	// applied, as its last pull said (Zone holds replicas of ours).
	Acked uint64 `json:"acked"`
	// Refused lists the keys whose entries from Zone's log this zone
	// refused although Zone announced itself their primary: this zone
	// holds a newer primary (a takeover Zone has not learnt of yet).
	Refused []string `json:"refused,omitempty"`
	// Disputed is Zone's Refused list about this zone's log, from its last
	// acknowledgement: its ack does not cover those keys, so a version of
	// theirs pending here is never promoted on its strength.
	Disputed []string `json:"disputed,omitempty"`
}

// maxRefused bounds the Refused and Disputed lists.
const maxRefused = 1000

// seqEntry orders the change log by sequence.
type seqEntry struct {
	seq   uint64
	keyID string
}

func newSeqIndex() *btree.BTreeG[seqEntry] {
	return btree.NewG(16, func(a, b seqEntry) bool { return a.seq < b.seq })
}

// maxReplicaZones bounds a key's replica set.
const maxReplicaZones = 16

// checkPrimary refuses a lifecycle change of a replica: its primary zone
// makes the change, and the change log brings it here.
func (s *state) checkPrimary(k *Key) error {
	if k.IsReplicaIn(s.zone) {
		return &NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}
	}
	return nil
}

// multiZonePrimary reports whether k is a primary of this zone with
// replicas elsewhere.
func (s *state) multiZonePrimary(k *Key) bool {
	return s.zone != "" && k.PrimaryZone == s.zone && len(k.ReplicaZones) > 0
}

// logChange appends k's state to this zone's change log, replacing the
// key's previous entry (compaction): the log holds one entry per key.
func (s *state) logChange(k *Key) {
	s.appendChange(ChangeEntry{KeyID: k.ID, Key: k})
}

// logTombstone appends the purge of a multi-zone primary.
func (s *state) logTombstone(t Tombstone) {
	s.appendChange(ChangeEntry{KeyID: t.ID, Tombstone: &t})
}

func (s *state) appendChange(e ChangeEntry) {
	if old, ok := s.changes[e.KeyID]; ok {
		s.bySeq.Delete(seqEntry{seq: old.Seq})
	}
	s.changeSeq++
	e.Seq = s.changeSeq
	s.changes[e.KeyID] = e
	s.bySeq.ReplaceOrInsert(seqEntry{seq: e.Seq, keyID: e.KeyID})
}

// validateReplicaZones checks a replica set for a key of this zone.
func (s *state) validateReplicaZones(zones []string) error {
	if len(zones) == 0 {
		return nil
	}
	if s.zone == "" {
		return invalid("replica zones need a multi-zone state machine")
	}
	if len(zones) > maxReplicaZones {
		return invalid("%d replica zones, at most %d", len(zones), maxReplicaZones)
	}
	for i, z := range zones {
		switch {
		case z == "":
			return invalid("empty replica zone name")
		case z == s.zone:
			return invalid("replica zone %s is the key's primary zone", z)
		case i > 0 && zones[i-1] >= z:
			return invalid("replica zones must be sorted and unique")
		}
	}
	return nil
}

// startPending makes c's newest version pending until every replica zone
// has applied the change-log entry that carries it: that is the entry the
// commit of c is about to append.
func (s *state) startPending(c *Key) {
	c.PendingVersion = c.Versions[len(c.Versions)-1].Number
	c.PendingZones = slices.Clone(c.ReplicaZones)
	c.PendingSeq = s.changeSeq + 1
	s.pending[c.ID] = struct{}{}
}

// settlePending drops from c's pending zones those that no longer hold
// replicas or have acknowledged PendingSeq, and promotes the pending
// version when none is left. It reports whether c changed.
func (s *state) settlePending(c *Key) bool {
	if c.PendingVersion == 0 {
		return false
	}
	kept := c.PendingZones[:0:0]
	for _, z := range c.PendingZones {
		prog := s.replication[z]
		if slices.Contains(c.ReplicaZones, z) && (prog.Acked < c.PendingSeq || slices.Contains(prog.Disputed, c.ID)) {
			kept = append(kept, z)
		}
	}
	if len(kept) == len(c.PendingZones) {
		return false
	}
	c.PendingZones = kept
	if len(kept) == 0 {
		c.CurrentVersion = c.PendingVersion
		c.PendingVersion, c.PendingZones, c.PendingSeq = 0, nil, 0
		delete(s.pending, c.ID)
	}
	return true
}

// applySetReplicaZones replaces a primary key's replica set. Zones that
// leave drop their copy when they apply the entry; zones that join get
// the whole key, every version included. A pending version no longer
// waits for a zone that left.
func applySetReplicaZones(s *state, index uint64, p *SetReplicaZonesV1) Result {
	k, err := s.lookup(p.KeyRefV1)
	if err != nil {
		return Result{Err: err}
	}
	if err := s.validateReplicaZones(p.ReplicaZones); err != nil {
		return Result{Err: fmt.Errorf("set replica zones of key %s: %w", k.ID, err)}
	}
	if err := checkDefaultReplicas(k, p.ReplicaZones); err != nil {
		return Result{Err: err}
	}
	if slices.Equal(k.ReplicaZones, p.ReplicaZones) {
		return Result{Key: k}
	}
	had := len(k.ReplicaZones) > 0
	c := k.clone()
	c.ReplicaZones = nonNil(slices.Clone(p.ReplicaZones))
	internAll(c.ReplicaZones)
	if c.PendingVersion != 0 {
		// A zone that joins while a version is pending must hold it
		// before it encrypts: it waits for the entry about to be logged.
		for _, z := range c.ReplicaZones {
			if !slices.Contains(k.ReplicaZones, z) {
				c.PendingZones = append(c.PendingZones, z)
				c.PendingSeq = s.changeSeq + 1
			}
		}
		slices.Sort(c.PendingZones)
	}
	s.settlePending(c)
	res := s.commit(c, index, p.Now)
	if had && len(c.ReplicaZones) == 0 {
		// commit logs only keys that still have replicas; the zones
		// that just left must still learn it.
		s.logChange(c)
	}
	return res
}

// applyReplicaAck records how far a replica zone has applied this zone's
// change log and promotes the pending versions that waited only for it.
// Promotions are themselves changes: the replicas learn from the log that
// the new version now encrypts.
func applyReplicaAck(s *state, index uint64, p *ReplicaAckV1) Result {
	if p.Zone == "" || p.Zone == s.zone || len(p.Disputed) > maxRefused {
		return Result{Err: invalid("replica ack from zone %q", p.Zone)}
	}
	prog := s.replication[p.Zone]
	disputed := slices.Compact(slices.Sorted(slices.Values(p.Disputed)))
	if p.Seq <= prog.Acked && slices.Equal(disputed, prog.Disputed) {
		return Result{}
	}
	if p.Seq > s.changeSeq {
		return Result{Err: invalid("zone %s acknowledges sequence %d beyond the log head %d", p.Zone, p.Seq, s.changeSeq)}
	}
	prog.Zone, prog.Acked, prog.Disputed = intern(p.Zone), max(prog.Acked, p.Seq), disputed
	s.replication[prog.Zone] = prog
	for _, id := range slices.Sorted(maps.Keys(s.pending)) {
		k := s.keys[id]
		if k == nil {
			delete(s.pending, id)
			continue
		}
		c := k.clone()
		if s.settlePending(c) {
			s.commit(c, index, p.Now)
		}
	}
	return Result{}
}

// applyChanges applies a batch of a remote zone's change log to this
// zone's replicas. An entry for a key that names this zone among its
// replicas creates or replaces the replica (keeping this zone's revision
// numbering); one that no longer names it removes the replica; a
// tombstone purges it. A key that is a primary here is never overwritten.
// index is unused: what a replica holds depends only on the entries.
func applyChanges(s *state, index uint64, p *ApplyChangesV1) Result {
	if p.SourceZone == "" || p.SourceZone == s.zone || s.zone == "" {
		return Result{Err: invalid("changes from zone %q applied in zone %q", p.SourceZone, s.zone)}
	}
	prog := s.replication[p.SourceZone]
	if p.Upto <= prog.Applied {
		return Result{} // already applied: a retried or duplicate pull
	}
	if p.After != prog.Applied {
		return Result{Err: fmt.Errorf("changes of zone %s after %d, applied %d: %w",
			p.SourceZone, p.After, prog.Applied, ErrChangeGap)}
	}
	last := p.After
	for _, e := range p.Entries {
		if e.Seq <= last || e.Seq > p.Upto || !wellFormedEntry(&e) ||
			(e.Key != nil && (e.Key.ID != e.KeyID || e.Key.PrimaryZone == "")) {
			return Result{Err: invalid("malformed change entry %d of zone %s", e.Seq, p.SourceZone)}
		}
		last = e.Seq
	}
	for _, e := range p.Entries {
		if e.Organization != nil || e.Token != nil {
			// Tenancy records: no epochs, no refusals to report.
			s.applyTenancyEntry(e, p.SourceZone)
			continue
		}
		accepted := s.applyEntry(index, e, p.SourceZone)
		switch {
		case accepted:
			prog.Refused = slices.DeleteFunc(prog.Refused, func(id string) bool { return id == e.KeyID })
		case e.Key != nil && e.Key.PrimaryZone == p.SourceZone && len(prog.Refused) < maxRefused &&
			!slices.Contains(prog.Refused, e.KeyID):
			prog.Refused = append(prog.Refused, e.KeyID)
			slices.Sort(prog.Refused)
		}
	}
	prog.Zone, prog.Applied = intern(p.SourceZone), p.Upto
	s.replication[prog.Zone] = prog
	return Result{}
}

// holder is who holds a key's lifecycle, in a change entry or in this
// zone's copy (a live key or a tombstone).
type holder struct {
	epoch   uint64
	primary string
}

func entryHolder(e ChangeEntry) holder {
	if e.Tombstone != nil {
		return holder{e.Tombstone.PrimaryEpoch, e.Tombstone.PrimaryZone}
	}
	return holder{e.Key.PrimaryEpoch, e.Key.PrimaryZone}
}

// localHolder returns the holder of this zone's copy of key id, if any.
func (s *state) localHolder(id string) (holder, bool) {
	if k, ok := s.keys[id]; ok {
		return holder{k.PrimaryEpoch, k.PrimaryZone}, true
	}
	if t, ok := s.tombstones[id]; ok {
		return holder{t.PrimaryEpoch, t.PrimaryZone}, true
	}
	return holder{}, false
}

// accepts decides whether an entry of source's change log may replace
// this zone's copy of the key (live or tombstone). A higher primary epoch
// wins: a primary taken over while away becomes a replica again, and its
// changes of that time (a purge included) are undone. At an equal epoch
// only the copy's own primary zone changes it, and never the primary
// itself; two takeovers at the same epoch (each by force, each while the
// other was away) are settled the same way everywhere: the smaller zone
// name wins. A key this zone holds nothing of is taken only from its
// primary zone's log (or handed over to this zone), never from a stale
// entry of a zone that is no longer its primary.
func (s *state) accepts(e ChangeEntry, source string) bool {
	in := entryHolder(e)
	cur, ok := s.localHolder(e.KeyID)
	switch {
	case !ok:
		return in.primary == source || in.primary == s.zone
	case in.epoch != cur.epoch:
		return in.epoch > cur.epoch
	case in.primary != cur.primary:
		return in.primary < cur.primary
	}
	return cur.primary == source && cur.primary != s.zone
}

// applyEntry applies one entry of source's change log if accepts says so,
// and reports whether it did.
func (s *state) applyEntry(index uint64, e ChangeEntry, source string) bool {
	if !s.accepts(e, source) {
		if k, ok := s.keys[e.KeyID]; ok && !k.IsReplicaIn(s.zone) && entryHolder(e).epoch < k.PrimaryEpoch {
			// A zone that has not learnt this zone took the key over
			// announces older state: log ours again so it learns.
			s.logChange(k)
		}
		return false
	}
	local, exists := s.keys[e.KeyID]
	if exists && !local.IsReplicaIn(s.zone) {
		// Demoted: this zone no longer holds the key's lifecycle.
		s.dropChange(e.KeyID)
		delete(s.pending, e.KeyID)
	}
	switch {
	case e.Tombstone != nil:
		if exists {
			s.removeKey(local)
		}
		t := *e.Tombstone
		t.Organization = intern(t.Organization)
		t.PrimaryZone = intern(t.PrimaryZone)
		s.tombstones[e.KeyID] = t
	case e.Key.PrimaryZone == s.zone:
		// The key was handed over to this zone: it is a primary here
		// now, with a revision of this zone's log, and its state goes to
		// this zone's own log so that the other zones follow it.
		c := s.storeCopy(e, exists)
		c.ReplicaSeq = 0
		c.Revision = index
		s.logChange(c)
	case slices.Contains(e.Key.ReplicaZones, s.zone):
		// The replica keeps the primary's revision, so that an If-Match
		// read in any zone holds in the primary zone.
		c := s.storeCopy(e, exists)
		c.ReplicaSeq = e.Seq
	case exists:
		s.removeKey(local) // this zone left the key's replica set
	}
	return true
}

// storeCopy stores a copy of e's key as this zone's, reviving it if a
// lower-epoch tombstone stood in its place.
func (s *state) storeCopy(e ChangeEntry, exists bool) *Key {
	c := e.Key.clone()
	internKey(c)
	delete(s.tombstones, c.ID)
	if !exists {
		s.indexKey(c)
	}
	s.putKey(c)
	return c
}

// dropChange removes a key's entry from this zone's change log.
func (s *state) dropChange(id string) {
	if old, ok := s.changes[id]; ok {
		s.bySeq.Delete(seqEntry{seq: old.Seq})
		delete(s.changes, id)
	}
}

// applyUpdatePrimary moves a key's primary zone (see UpdatePrimaryV1).
func applyUpdatePrimary(s *state, index uint64, p *UpdatePrimaryV1) Result {
	k, err := s.find(p.KeyID, p.Organization)
	if err != nil {
		return Result{Err: err}
	}
	if err := checkRevision(k, p.KeyRefV1); err != nil {
		return Result{Err: err}
	}
	if s.zone == "" || p.NewPrimary == "" {
		return Result{Err: invalid("update primary of key %s to %q in zone %q", k.ID, p.NewPrimary, s.zone)}
	}
	if k.IsReplicaIn(s.zone) {
		if p.NewPrimary != s.zone || !p.Force {
			return Result{Err: &NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}}
		}
		// Forced takeover: the old primary is unreachable.
		c := k.clone()
		old := c.PrimaryZone
		c.PrimaryZone = s.zone
		c.ReplicaZones = swapZone(c.ReplicaZones, s.zone, old)
		c.PrimaryEpoch++
		c.ReplicaSeq = 0
		if c.PendingVersion != 0 {
			// Replay the two-phase rotation from here: the zones this
			// zone can't vouch for acknowledge it again.
			c.PendingZones = slices.Clone(c.ReplicaZones)
			c.PendingSeq = s.changeSeq + 1
			s.pending[c.ID] = struct{}{}
		}
		return s.commit(c, index, p.Now)
	}
	if p.NewPrimary == s.zone {
		return Result{Key: k}
	}
	if !slices.Contains(k.ReplicaZones, p.NewPrimary) {
		return Result{Err: invalid("zone %s is not a replica zone of key %s", p.NewPrimary, k.ID)}
	}
	if k.PendingVersion != 0 {
		return Result{Err: fmt.Errorf("update primary of key %s: version %d still waits for zones %v: %w",
			k.ID, k.PendingVersion, k.PendingZones, ErrRotationPending)}
	}
	if last, acked := s.changes[k.ID].Seq, s.replication[p.NewPrimary].Acked; acked < last && !p.Force {
		return Result{Err: fmt.Errorf("zone %s has applied this zone's changes up to %d, not the key's last change %d; force to hand over anyway and lose it: %w",
			p.NewPrimary, acked, last, ErrZoneBehind)}
	}
	c := k.clone()
	c.PrimaryZone = intern(p.NewPrimary)
	c.ReplicaZones = swapZone(c.ReplicaZones, p.NewPrimary, s.zone)
	c.PrimaryEpoch++
	res := s.commit(c, index, p.Now)
	// commit logs primaries only; the new primary learns from this entry.
	s.logChange(c)
	return res
}

// swapZone returns zones without out and with in, sorted.
func swapZone(zones []string, out, in string) []string {
	res := make([]string, 0, len(zones))
	for _, z := range zones {
		if z != out && z != in {
			res = append(res, z)
		}
	}
	res = append(res, intern(in))
	slices.Sort(res)
	return res
}

// indexKey adds a new key's id to its organization's index.
func (s *state) indexKey(k *Key) {
	x := s.byOrg[k.Organization]
	if x == nil {
		x = &idIndex{}
		s.byOrg[k.Organization] = x
	}
	x.insert(k.ID)
}

// removeKey drops a live key and its index entry.
func (s *state) removeKey(k *Key) {
	if cur, ok := s.keys[k.ID]; ok {
		s.uncount(cur)
	}
	delete(s.keys, k.ID)
	s.due.remove(k.ID)
	delete(s.pending, k.ID)
	delete(s.imports, k.ID)
	if x := s.byOrg[k.Organization]; x != nil {
		x.remove(k.ID)
		if len(x.chunks) == 0 {
			delete(s.byOrg, k.Organization)
		}
	}
}

// ChangesAfter returns the entries of this zone's compacted change log
// with a sequence above after, in order, at most limit of them (limit <= 0:
// all), and upto, the sequence they cover: every entry in (after, upto]
// is included, so a puller that applies them has applied the log up to
// upto.
func (f *FSM) ChangesAfter(after uint64, limit int) (entries []ChangeEntry, upto uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	upto = f.st.changeSeq
	f.st.bySeq.AscendGreaterOrEqual(seqEntry{seq: after + 1}, func(se seqEntry) bool {
		if limit > 0 && len(entries) == limit {
			upto = entries[len(entries)-1].Seq
			return false
		}
		entries = append(entries, f.st.changes[se.keyID])
		return true
	})
	if upto < after {
		upto = after
	}
	return entries, upto
}

// ChangeSeq returns the head of this zone's change log.
func (f *FSM) ChangeSeq() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.changeSeq
}

// ChangeLogLen returns the number of entries in the compacted change log.
func (f *FSM) ChangeLogLen() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.changes)
}

// Replication returns the progress with every remote zone this zone has
// exchanged changes with, sorted by zone.
func (f *FSM) Replication() []ZoneProgress {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]ZoneProgress, 0, len(f.st.replication))
	for _, z := range slices.Sorted(maps.Keys(f.st.replication)) {
		out = append(out, f.st.replication[z])
	}
	return out
}

// ReplicationOf returns the progress with one remote zone.
func (f *FSM) ReplicationOf(zone string) ZoneProgress {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := f.st.replication[zone]
	p.Zone = zone
	return p
}

// NeedsAck reports whether recording that zone has applied this zone's
// change log up to seq would be news. A replica zone's pull asks for the
// entries after what it applied, so acknowledgements come at most once per
// batch of changes: few enough to record each through Raft, which keeps
// the replication lag exact and lets pending versions be promoted.
func (f *FSM) NeedsAck(zone string, seq uint64, disputed []string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	prog := f.st.replication[zone]
	if seq > f.st.changeSeq {
		return false
	}
	return seq > prog.Acked || !slices.Equal(slices.Compact(slices.Sorted(slices.Values(disputed))), prog.Disputed)
}

// WaitChanges blocks until this zone's change log has an entry after
// seq, or ctx is done (returning ctx.Err()).
func (f *FSM) WaitChanges(ctx context.Context, seq uint64) error {
	for {
		ch := f.nextApply()
		if f.ChangeSeq() > seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// nextApply returns a channel closed when the applied index next advances.
func (f *FSM) nextApply() <-chan struct{} {
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	if f.waitCh == nil {
		f.waitCh = make(chan struct{})
	}
	return f.waitCh
}
