package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

func newZoneFSM(t testing.TB, zone string) *FSM { return New(testLogger(t), WithZone(zone)) }

// pull moves every change of src newer than what dst applied into dst,
// then tells src how far dst got, as the zone puller does.
func pull(t *testing.T, src, dst *FSM) Result {
	t.Helper()
	after := dst.ReplicationOf(src.Zone()).Applied
	entries, upto := src.ChangesAfter(after, 0)
	res := apply(t, dst, CmdApplyChanges, ApplyChangesV1{SourceZone: src.Zone(), After: after, Upto: upto, Entries: entries, Now: t0})
	if res.Err != nil {
		return res
	}
	prog := dst.ReplicationOf(src.Zone())
	if src.NeedsAck(dst.Zone(), prog.Applied, prog.Refused) {
		if r := apply(t, src, CmdReplicaAck, ReplicaAckV1{Zone: dst.Zone(), Seq: prog.Applied, Now: t0, Disputed: prog.Refused}); r.Err != nil {
			t.Fatalf("ack: %v", r.Err)
		}
	}
	return res
}

// replicatedView is what must be equal between a primary and its
// replicas: everything but the local revision and the replica sequence.
func replicatedView(t *testing.T, k *Key) string {
	t.Helper()
	c := k.clone()
	c.Revision, c.ReplicaSeq = 0, 0
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFSM_TwoPhaseRotation(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	pull(t, a, b)
	pull(t, a, c)

	k := mustApply(t, a, CmdRotateKey, rotate("k1", orgA, 2, t0+hour))
	if k.CurrentVersion != 1 || k.PendingVersion != 2 || !slices.Equal(k.PendingZones, []string{"zone-2", "zone-3"}) {
		t.Fatalf("after rotate: current %d pending %d zones %v, want 1, 2, [zone-2 zone-3]", k.CurrentVersion, k.PendingVersion, k.PendingZones)
	}
	if res := apply(t, a, CmdRotateKey, rotate("k1", orgA, 3, t0+hour)); !errors.Is(res.Err, ErrRotationPending) {
		t.Fatalf("second rotate: got %v, want ErrRotationPending", res.Err)
	}

	// zone-2 gets version 2 but keeps encrypting with 1.
	pull(t, a, b)
	rb, _ := b.Key("k1")
	if _, ok := rb.Version(2); !ok || rb.CurrentVersion != 1 {
		t.Fatalf("replica in zone-2: versions %d current %d, want version 2 held and 1 current", len(rb.Versions), rb.CurrentVersion)
	}
	if k, _ := a.Key("k1"); k.CurrentVersion != 1 || !slices.Equal(k.PendingZones, []string{"zone-3"}) {
		t.Fatalf("after zone-2's ack: current %d waits for %v, want 1 waiting for [zone-3]", k.CurrentVersion, k.PendingZones)
	}
	// zone-3 acks: the version is promoted everywhere.
	pull(t, a, c)
	if k, _ := a.Key("k1"); k.CurrentVersion != 2 || k.PendingVersion != 0 {
		t.Fatalf("after every ack: current %d pending %d, want 2, 0", k.CurrentVersion, k.PendingVersion)
	}
	pull(t, a, b)
	pull(t, a, c)
	want, _ := a.Key("k1")
	for _, z := range []*FSM{b, c} {
		got, _ := z.Key("k1")
		if got.CurrentVersion != 2 || replicatedView(t, got) != replicatedView(t, want) {
			t.Errorf("%s: replica %s differs from primary %s", z.Zone(), replicatedView(t, got), replicatedView(t, want))
		}
	}
}

func TestFSM_ReplicaRefusesLifecycle(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	p := withPolicy(withReplicas(createKey("k1", orgA), "zone-2"), hour, t0+hour)
	mustApply(t, a, CmdCreateKey, p)
	mustApply(t, a, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
	pull(t, a, b)

	for name, step := range map[string]step{
		"disable":  {CmdDisableKey, ref("k1", orgA, t0)},
		"rotate":   {CmdRotateKey, rotate("k1", orgA, 2, t0)},
		"cancel":   {CmdCancelDeletion, ref("k1", orgA, t0)},
		"purge":    {CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 2*day}},
		"replicas": {CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k1", orgA, t0)}},
	} {
		res := apply(t, b, step.typ, step.payload)
		var np *NotPrimaryError
		if !errors.As(res.Err, &np) || np.PrimaryZone != "zone-1" {
			t.Errorf("%s on a replica: got %v, want NotPrimaryError naming zone-1", name, res.Err)
		}
		// The error survives forwarding between nodes.
		js, _ := res.MarshalJSON()
		var back Result
		if err := back.UnmarshalJSON(js); err != nil || !errors.As(back.Err, &np) || np.PrimaryZone != "zone-1" {
			t.Errorf("%s: decoded %v, want NotPrimaryError", name, back.Err)
		}
	}
	if got := b.DuePurges(t0 + 2*day); len(got) != 0 {
		t.Errorf("DuePurges on a replica zone = %d keys, want none (the primary purges)", len(got))
	}
	if got := a.DuePurges(t0 + 2*day); len(got) != 1 {
		t.Errorf("DuePurges on the primary zone = %d keys, want 1", len(got))
	}
}

func TestFSM_ApplyChanges_GapsAndDuplicates(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k2", orgA), "zone-2"))
	entries, upto := a.ChangesAfter(0, 1)
	if len(entries) != 1 || upto != 1 {
		t.Fatalf("limited pull = %d entries up to %d, want 1 up to 1", len(entries), upto)
	}
	// A batch that skips what zone-2 has not applied is a gap.
	rest, head := a.ChangesAfter(1, 0)
	res := apply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: 1, Upto: head, Entries: rest})
	if !errors.Is(res.Err, ErrChangeGap) {
		t.Fatalf("gap: got %v, want ErrChangeGap", res.Err)
	}
	if _, ok := b.Key("k2"); ok {
		t.Fatal("a refused batch changed the state")
	}
	apply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: 0, Upto: 1, Entries: entries})
	apply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: 1, Upto: head, Entries: rest})
	before := snapshotBytes(t, b)
	// The same batch again (a retried pull) changes nothing but the index.
	if res := apply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: 1, Upto: head, Entries: rest}); res.Err != nil {
		t.Fatalf("duplicate batch: %v", res.Err)
	}
	if stateBytes(t, b) != string(before[len(before)-len(stateBytes(t, b)):]) {
		t.Error("a duplicate batch changed the state")
	}
	// Malformed batches are refused whole.
	bad := []ChangeEntry{{Seq: 9, KeyID: "k3", Key: remoteKey("k3", orgA, "zone-1", "zone-2")}, {Seq: 8, KeyID: "k4", Key: remoteKey("k4", orgA, "zone-1", "zone-2")}}
	if res := apply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: head, Upto: 9, Entries: bad}); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("out-of-order entries: got %v, want ErrInvalidCommand", res.Err)
	}
}

func TestFSM_ChangeLogCompaction(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	for i := 0; i < 50; i++ {
		mustApply(t, a, CmdDisableKey, ref("k1", orgA, t0))
		mustApply(t, a, CmdEnableKey, ref("k1", orgA, t0))
	}
	if n := a.ChangeLogLen(); n != 1 {
		t.Fatalf("change log holds %d entries after 101 changes of one key, want 1", n)
	}
	// A zone that joins late catches up from the compacted log in one pull.
	pull(t, a, b)
	got, ok := b.Key("k1")
	want, _ := a.Key("k1")
	if !ok || replicatedView(t, got) != replicatedView(t, want) {
		t.Fatalf("late zone: got %v, want the primary's state", got)
	}
	if got.ReplicaSeq != a.ChangeSeq() {
		t.Errorf("ReplicaSeq = %d, want %d", got.ReplicaSeq, a.ChangeSeq())
	}
}

func TestFSM_ReplicaRemovalAndPurge(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	pull(t, a, b)
	pull(t, a, c)
	// zone-3 leaves the replica set: its copy goes, zone-2's stays.
	mustApply(t, a, CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k1", orgA, t0), ReplicaZones: []string{"zone-2"}})
	pull(t, a, b)
	pull(t, a, c)
	if _, ok := c.Key("k1"); ok {
		t.Error("zone-3 kept its replica after leaving the replica set")
	}
	if _, ok := b.Key("k1"); !ok {
		t.Fatal("zone-2 lost its replica")
	}
	// A purge on the primary purges the replica, for good.
	mustApply(t, a, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
	mustApply(t, a, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + day})
	pull(t, a, b)
	if _, ok := b.Key("k1"); ok || !b.IsTombstoned("k1") {
		t.Error("zone-2's replica survived the purge of its primary")
	}
	// Removing the last replica still reaches the zone that left.
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k2", orgA), "zone-2"))
	pull(t, a, b)
	mustApply(t, a, CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k2", orgA, t0)})
	pull(t, a, b)
	if _, ok := b.Key("k2"); ok {
		t.Error("zone-2 kept a key that has no replicas any more")
	}
	// A pending version no longer waits for a zone that left.
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k3", orgA), "zone-2", "zone-3"))
	mustApply(t, a, CmdRotateKey, rotate("k3", orgA, 2, t0))
	k := mustApply(t, a, CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k3", orgA, t0), ReplicaZones: []string{"zone-2"}})
	if !slices.Equal(k.PendingZones, []string{"zone-2"}) {
		t.Errorf("pending zones %v after zone-3 left, want [zone-2]", k.PendingZones)
	}
}

func TestFSM_ReplicaZonesValidation(t *testing.T) {
	f := newZoneFSM(t, "zone-1")
	for _, zones := range [][]string{{"zone-1"}, {""}, {"zone-3", "zone-2"}, {"zone-2", "zone-2"}} {
		res := apply(t, f, CmdCreateKey, withReplicas(createKey("k1", orgA), zones...))
		if !errors.Is(res.Err, ErrInvalidCommand) {
			t.Errorf("replica zones %q: got %v, want ErrInvalidCommand", zones, res.Err)
		}
	}
	single := New(testLogger(t))
	if res := apply(t, single, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2")); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("replicas on a single-zone FSM: got %v, want ErrInvalidCommand", res.Err)
	}
}

func TestFSM_ZonesSnapshotRoundTrip(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	pull(t, a, b)
	mustApply(t, a, CmdRotateKey, rotate("k1", orgA, 2, t0))
	if k, _ := a.Key("k1"); k.PendingVersion != 2 {
		t.Fatalf("pending version %d before the snapshot, want 2", k.PendingVersion)
	}
	for _, f := range []*FSM{a, b} {
		g := New(testLogger(t), WithZone(f.Zone()))
		if err := restoreBytes(g, snapshotBytes(t, f)); err != nil {
			t.Fatalf("%s: restore: %v", f.Zone(), err)
		}
		if string(snapshotBytes(t, g)) != string(snapshotBytes(t, f)) {
			t.Errorf("%s: restored snapshot differs", f.Zone())
		}
		if g.ChangeSeq() != f.ChangeSeq() || !reflect.DeepEqual(g.Replication(), f.Replication()) {
			t.Errorf("%s: restored log head %d / %v, want %d / %v", f.Zone(), g.ChangeSeq(), g.Replication(), f.ChangeSeq(), f.Replication())
		}
		// The pending set is rebuilt: the promotion still happens.
		if f == a {
			apply(t, g, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: g.ChangeSeq(), Now: t0})
			if k, _ := g.Key("k1"); k.CurrentVersion != 2 {
				t.Errorf("restored primary did not promote on ack: current %d", k.CurrentVersion)
			}
		}
	}
}

func TestFSM_UpdateSamePeriodKeepsSchedule(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k1", orgA), day, t0+day))
	same := RotationPolicy{Period: day, NextRotationAt: t0 + hour + day}
	k := mustApply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0+hour), RotationPolicy: &same})
	if k.RotationPolicy.NextRotationAt != t0+day {
		t.Errorf("re-sending the same period moved next rotation to %d, want %d", k.RotationPolicy.NextRotationAt, t0+day)
	}
	other := RotationPolicy{Period: 2 * day, NextRotationAt: t0 + hour + 2*day}
	k = mustApply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0+hour), RotationPolicy: &other})
	if k.RotationPolicy != other {
		t.Errorf("a new period: got %+v, want %+v", k.RotationPolicy, other)
	}
}

func TestFSM_UpdatePrimary_HandOver(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	mustApply(t, a, CmdDisableKey, ref("k1", orgA, t0))
	// zone-2 has not pulled yet: it is behind the key's last change.
	res := apply(t, a, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2"})
	if !errors.Is(res.Err, ErrZoneBehind) {
		t.Fatalf("hand over to a zone that is behind: got %v, want ErrZoneBehind", res.Err)
	}
	if res := apply(t, a, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-9"}); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("hand over to a zone that is no replica: got %v", res.Err)
	}
	pull(t, a, b)
	pull(t, a, c)
	mustApply(t, a, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2"})
	// zone-1 is a replica now: it refuses changes.
	var np *NotPrimaryError
	if res := apply(t, a, CmdEnableKey, ref("k1", orgA, t0)); !errors.As(res.Err, &np) || np.PrimaryZone != "zone-2" {
		t.Fatalf("change on the old primary: got %v, want NotPrimaryError naming zone-2", res.Err)
	}
	pull(t, a, b) // zone-2 adopts the key
	pull(t, a, c) // zone-3 learns the new primary from the old one
	kb, _ := b.Key("k1")
	if kb.IsReplicaIn("zone-2") || !slices.Equal(kb.ReplicaZones, []string{"zone-1", "zone-3"}) {
		t.Fatalf("zone-2 after the hand-over: primary %s replicas %v", kb.PrimaryZone, kb.ReplicaZones)
	}
	// Changes now come from zone-2 and reach zone-1 and zone-3.
	mustApply(t, b, CmdEnableKey, ref("k1", orgA, t0))
	pull(t, b, a)
	pull(t, b, c)
	for _, f := range []*FSM{a, c} {
		k, _ := f.Key("k1")
		if k.State != KeyStateEnabled || k.PrimaryZone != "zone-2" || replicatedView(t, k) != replicatedView(t, mustKey(t, b, "k1")) {
			t.Errorf("%s after a change on the new primary: %+v", f.Zone(), k)
		}
	}
	// A stale entry of the old primary's log changes nothing any more.
	pull(t, a, c)
	if k, _ := c.Key("k1"); k.State != KeyStateEnabled {
		t.Error("zone-3 went back to the old primary's state")
	}
}

func TestFSM_UpdatePrimary_ForcedTakeover(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	pull(t, a, b)
	// zone-1 is unreachable; it goes on changing the key meanwhile.
	mustApply(t, a, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0), Description: ptr("lost")})
	if res := apply(t, b, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2"}); !errors.As(res.Err, new(*NotPrimaryError)) {
		t.Fatalf("takeover without force: got %v, want NotPrimaryError", res.Err)
	}
	k := mustApply(t, b, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2", Force: true})
	if k.PrimaryZone != "zone-2" || k.PrimaryEpoch != 1 || !slices.Equal(k.ReplicaZones, []string{"zone-1"}) {
		t.Fatalf("after the takeover: %+v", k)
	}
	mustApply(t, b, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0), Description: ptr("kept")})
	// zone-1 comes back: its entry loses to the higher epoch, and zone-1
	// becomes a replica of zone-2, dropping what it changed meanwhile.
	pull(t, a, b)
	if k, _ := b.Key("k1"); k.Description != "kept" {
		t.Fatalf("the old primary's entry overwrote the new primary: %q", k.Description)
	}
	pull(t, b, a)
	ka, _ := a.Key("k1")
	if ka.PrimaryZone != "zone-2" || ka.Description != "kept" || !ka.IsReplicaIn("zone-1") {
		t.Fatalf("old primary after coming back: primary %s description %q", ka.PrimaryZone, ka.Description)
	}
	if got := a.DueRotations(t0 + 100*day); len(got) != 0 {
		t.Error("the demoted zone still schedules the key")
	}
}

func mustKey(t *testing.T, f *FSM, id string) *Key {
	t.Helper()
	k, ok := f.Key(id)
	if !ok {
		t.Fatalf("%s: no key %s", f.Zone(), id)
	}
	return k
}

func ptr[T any](v T) *T { return &v }

// The cases below are the orderings a review found to diverge: each pair
// of zones must end up agreeing, whatever entry arrives first.

func TestFSM_TombstoneBeforeHandOver(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	pull(t, a, b)
	pull(t, a, c)
	mustApply(t, a, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2", Force: true})
	pull(t, a, b)
	mustApply(t, b, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
	mustApply(t, b, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + day})
	pull(t, b, c) // the tombstone first,
	pull(t, a, c) // then the old primary's hand-over entry
	if _, ok := c.Key("k1"); ok || !c.IsTombstoned("k1") {
		t.Fatal("the hand-over entry revived a key its new primary purged")
	}
}

func TestFSM_ZombieFromOldPrimaryLog(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	pull(t, a, b)
	pull(t, a, c)
	mustApply(t, a, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2", Force: true})
	pull(t, a, b)
	mustApply(t, b, CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k1", orgA, t0), ReplicaZones: []string{"zone-1"}})
	pull(t, b, c) // zone-3 leaves the replica set,
	pull(t, a, c) // then sees the old primary's stale hand-over entry
	if _, ok := c.Key("k1"); ok {
		t.Fatal("a stale entry of the old primary brought back a replica that was removed")
	}
}

func TestFSM_ForcedTakeoverUndoesOldPrimaryPurge(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	mustApply(t, a, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
	pull(t, a, b)
	pull(t, a, c)
	mustApply(t, b, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2", Force: true})
	mustApply(t, b, CmdCancelDeletion, ref("k1", orgA, t0))
	mustApply(t, a, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + day}) // zone-1, cut off, purges
	for round := 0; round < 3; round++ {
		for _, src := range []*FSM{a, b, c} {
			for _, dst := range []*FSM{a, b, c} {
				if src != dst {
					pull(t, src, dst)
				}
			}
		}
	}
	want := mustKey(t, b, "k1")
	for _, f := range []*FSM{a, c} {
		k, ok := f.Key("k1")
		if !ok || replicatedView(t, k) != replicatedView(t, want) {
			t.Errorf("%s: live=%v; want the takeover's state (the old primary's purge undone)", f.Zone(), ok)
		}
	}
}

func TestFSM_TwoTakeoversSettle(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3"))
	pull(t, a, b)
	pull(t, a, c)
	mustApply(t, b, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2", Force: true})
	mustApply(t, c, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-3", Force: true})
	for round := 0; round < 3; round++ {
		for _, src := range []*FSM{c, b, a} {
			for _, dst := range []*FSM{a, b, c} {
				if src != dst {
					pull(t, src, dst)
				}
			}
		}
	}
	for _, f := range []*FSM{a, b, c} {
		if k := mustKey(t, f, "k1"); k.PrimaryZone != "zone-2" {
			t.Errorf("%s says the primary is %s, want zone-2 (the smaller name at equal epochs)", f.Zone(), k.PrimaryZone)
		}
	}
}

func TestFSM_ReplicaAddedWhilePendingIsWaitedFor(t *testing.T) {
	a := newZoneFSM(t, "zone-1")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	mustApply(t, a, CmdRotateKey, rotate("k1", orgA, 2, t0))
	k := mustApply(t, a, CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k1", orgA, t0), ReplicaZones: []string{"zone-2", "zone-3"}})
	if !slices.Equal(k.PendingZones, []string{"zone-2", "zone-3"}) {
		t.Fatalf("pending zones %v after adding zone-3, want [zone-2 zone-3]", k.PendingZones)
	}
	apply(t, a, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: a.ChangeSeq(), Now: t0})
	if k := mustKey(t, a, "k1"); k.CurrentVersion != 1 {
		t.Fatal("version 2 encrypts before zone-3, a replica zone, holds it")
	}
}

func TestFSM_HandedOverKeyTakesTheNewPrimarysRevision(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	for i := 0; i < 20; i++ {
		mustApply(t, a, CmdCreateKey, createKey(fmt.Sprintf("x%d", i), orgA))
	}
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	pull(t, a, b)
	mustApply(t, a, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2"})
	pull(t, a, b)
	if k := mustKey(t, b, "k1"); k.Revision > b.AppliedIndex() {
		t.Fatalf("the new primary holds revision %d, beyond its own log (%d)", k.Revision, b.AppliedIndex())
	}
}

// TestFSM_AckDoesNotCoverRefusedKeys: a zone that took a key over while
// the old primary was cut off refuses the old primary's entries; its
// pulls must not let the old primary promote a version of that key.
func TestFSM_AckDoesNotCoverRefusedKeys(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	pull(t, a, b)
	mustApply(t, b, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0), NewPrimary: "zone-2", Force: true})
	mustApply(t, a, CmdRotateKey, rotate("k1", orgA, 2, t0)) // zone-1 does not know yet
	pull(t, a, b)                                            // zone-2 refuses it and acks
	if k := mustKey(t, a, "k1"); k.CurrentVersion != 1 {
		t.Fatalf("zone-1 promoted version %d on an ack that refused the key", k.CurrentVersion)
	}
	if got := b.ReplicationOf("zone-1").Refused; !slices.Equal(got, []string{"k1"}) {
		t.Fatalf("zone-2 refused %v, want [k1]", got)
	}
	pull(t, b, a) // zone-1 learns of the takeover and follows zone-2
	if k := mustKey(t, a, "k1"); k.PrimaryZone != "zone-2" || k.CurrentVersion != 1 || len(k.Versions) != 1 {
		t.Fatalf("zone-1 after learning of the takeover: %+v", k)
	}
}
