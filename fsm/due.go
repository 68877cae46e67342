package fsm

import "github.com/google/btree"

// dueKind says what the leader's scheduler does with a key when it is due.
type dueKind uint8

const (
	dueRotation dueKind = iota + 1 // an enabled primary key with a rotation period
	duePurge                       // a primary key pending deletion
)

// dueItem is a key in the scheduler's order: by the time it is due, then
// by id.
type dueItem struct {
	at   int64
	id   string
	kind dueKind
}

func dueLess(a, b dueItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.id != b.id {
		return a.id < b.id
	}
	return a.kind < b.kind
}

// dueIndex holds the keys the leader's scheduler acts on, ordered by the
// time they are due, so that DueRotations and DuePurges read the front of
// it instead of visiting every key under the state's lock once a tick (at
// a million keys, a quarter of a second that Apply waited for). It is
// derived from the keys alone (and the state's zone), kept up to date by
// putKey and removeKey and rebuilt on restore; it is not in snapshots.
type dueIndex struct {
	tree *btree.BTreeG[dueItem]
	// byID is what the tree holds for each key, so that an entry is
	// removed without trusting the old key's fields.
	byID map[string]dueItem
}

func newDueIndex() dueIndex {
	return dueIndex{tree: btree.NewG(16, dueLess), byID: make(map[string]dueItem)}
}

// dueItemOf returns k's place in the scheduler's order, if it has one in
// zone.
func dueItemOf(k *Key, zone string) (dueItem, bool) {
	if k.IsReplicaIn(zone) {
		return dueItem{}, false
	}
	switch {
	case k.State == KeyStateEnabled && k.RotationPolicy.Period > 0:
		return dueItem{at: k.RotationPolicy.NextRotationAt, id: k.ID, kind: dueRotation}, true
	case k.State == KeyStatePendingDeletion:
		return dueItem{at: k.DeletionAt, id: k.ID, kind: duePurge}, true
	}
	return dueItem{}, false
}

// set files k where it is due now, or nowhere.
func (x dueIndex) set(k *Key, zone string) {
	old, had := x.byID[k.ID]
	item, ok := dueItemOf(k, zone)
	if had && ok && old == item {
		return
	}
	if had {
		x.tree.Delete(old)
		delete(x.byID, k.ID)
	}
	if ok {
		x.tree.ReplaceOrInsert(item)
		x.byID[k.ID] = item
	}
}

// remove forgets the key id.
func (x dueIndex) remove(id string) {
	if old, had := x.byID[id]; had {
		x.tree.Delete(old)
		delete(x.byID, id)
	}
}

// due returns the ids of the keys of kind due at or before now.
func (x dueIndex) due(kind dueKind, now int64) []string {
	var ids []string
	x.tree.Ascend(func(it dueItem) bool {
		if it.at > now {
			return false
		}
		if it.kind == kind {
			ids = append(ids, it.id)
		}
		return true
	})
	return ids
}
