package fsm

import (
	"reflect"
	"slices"
	"testing"
)

// digestsByID indexes ReplicatedDigests by key id.
func digestsByID(f *FSM) map[string]KeyDigest {
	m := map[string]KeyDigest{}
	for _, d := range f.ReplicatedDigests() {
		m[d.KeyID] = d
	}
	return m
}

func TestFSM_ReplicatedDigests_PrimaryAndReplicasAgree(t *testing.T) {
	a, b, c := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2"), newZoneFSM(t, "zone-3")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k3", orgA), "zone-2", "zone-3"))
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("k1", orgB), "zone-2"))
	mustApply(t, a, CmdCreateKey, createKey("k2", orgA)) // single-zone: not listed
	pull(t, a, b)
	pull(t, a, c)
	mustApply(t, a, CmdRotateKey, rotate("k3", orgA, 2, t0+hour))
	// Before the pulls the replicas lag: lower sequence, other digest.
	pa, pb := digestsByID(a)["k3"], digestsByID(b)["k3"]
	if pb.ReplicaSeq >= pa.ReplicaSeq || pb.Digest == pa.Digest {
		t.Errorf("lagging replica: got seq %d digest %s, primary seq %d digest %s; want a lower sequence and another digest",
			pb.ReplicaSeq, pb.Digest, pa.ReplicaSeq, pa.Digest)
	}
	// Two rounds: the version, then its promotion once both zones acked.
	for range 2 {
		pull(t, a, b)
		pull(t, a, c)
	}

	primary := a.ReplicatedDigests()
	if got := digestIDs(primary); !slices.Equal(got, []string{"k1", "k3"}) {
		t.Fatalf("primary zone lists %v, want [k1 k3] (sorted, multi-zone keys only)", got)
	}
	if k, _ := a.Key("k3"); k.CurrentVersion != 2 {
		t.Fatalf("k3 current version %d, want 2 after both zones acked", k.CurrentVersion)
	}
	for _, d := range primary {
		if len(d.Digest) != 64 {
			t.Errorf("%s: digest %q, want 64 hex digits", d.KeyID, d.Digest)
		}
		if d.PrimaryZone != "zone-1" || d.ReplicaSeq == 0 {
			t.Errorf("%s on the primary: got %+v, want primary zone-1 and its change-log sequence", d.KeyID, d)
		}
		for _, z := range []*FSM{b, c} {
			got, held := digestsByID(z)[d.KeyID]
			if want := slices.Contains(d.ReplicaZones, z.Zone()); held != want {
				t.Errorf("%s in %s: held %v, want %v", d.KeyID, z.Zone(), held, want)
				continue
			}
			if held && !reflect.DeepEqual(got, d) {
				t.Errorf("%s in %s: got %+v, want the primary's %+v", d.KeyID, z.Zone(), got, d)
			}
		}
	}
	// Same state, different revisions: the replicas renumbered every
	// change, yet the digests agree.
	ka, _ := a.Key("k3")
	kb, _ := b.Key("k3")
	if ka.Revision == kb.Revision && ka.ReplicaSeq == kb.ReplicaSeq {
		t.Fatalf("test needs zone-local fields that differ: revisions %d/%d, replica seqs %d/%d",
			ka.Revision, kb.Revision, ka.ReplicaSeq, kb.ReplicaSeq)
	}
}

func digestIDs(ds []KeyDigest) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.KeyID)
	}
	return out
}

func TestFSM_ReplicatedDigests_LeftOut(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("gone", orgA), "zone-2"))
	mustApply(t, a, CmdCreateKey, withReplicas(createKey("left", orgA), "zone-2"))
	pull(t, a, b)
	mustApply(t, a, CmdScheduleDeletion, scheduleDeletion("gone", orgA, t0, t0+day))
	mustApply(t, a, CmdPurgeKey, PurgeKeyV1{KeyID: "gone", Now: t0 + day})
	mustApply(t, a, CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("left", orgA, t0)})
	if got := a.ReplicatedDigests(); len(got) != 0 {
		t.Errorf("primary lists %v, want nothing: one key purged, one without replicas", digestIDs(got))
	}
	// Until it pulls, zone-2 still holds both copies: verify reports them.
	if got := digestIDs(b.ReplicatedDigests()); !slices.Equal(got, []string{"gone", "left"}) {
		t.Errorf("zone-2 before its pull lists %v, want [gone left]", got)
	}
	pull(t, a, b)
	if got := b.ReplicatedDigests(); len(got) != 0 {
		t.Errorf("zone-2 after its pull lists %v, want nothing", digestIDs(got))
	}
	if got := New(testLogger(t)).ReplicatedDigests(); got == nil || len(got) != 0 {
		t.Errorf("empty FSM: got %#v, want an empty list", got)
	}
}

// TestFSM_ReplicatedDigest_Fields changes one field at a time: every
// replicated field changes the digest, the zone-local ones don't. Every
// field of Key must appear in the table, so that a new field is decided
// on.
func TestFSM_ReplicatedDigest_Fields(t *testing.T) {
	base := func() *Key {
		k := remoteKey("k1", orgA, "zone-1", "zone-2", "zone-3")
		k.PendingZones = []string{"zone-2"}
		return k
	}
	tests := []struct {
		field   string
		change  func(k *Key)
		differs bool
	}{
		{"ID", func(k *Key) { k.ID = "k2" }, true},
		{"Organization", func(k *Key) { k.Organization = orgB }, true},
		{"Name", func(k *Key) { k.Name = "other" }, true},
		{"Description", func(k *Key) { k.Description = "d" }, true},
		{"Tags", func(k *Key) { k.Tags = []string{"t"} }, true},
		{"Usage", func(k *Key) { k.Usage = "u" }, true},
		{"Algorithm", func(k *Key) { k.Algorithm = "a" }, true},
		{"Origin", func(k *Key) { k.Origin = OriginExternal }, true},
		{"State", func(k *Key) { k.State = KeyStateDisabled }, true},
		{"Protected", func(k *Key) { k.Protected = true }, true},
		{"RotationPolicy", func(k *Key) { k.RotationPolicy.NextRotationAt = t0 }, true},
		{"Versions", func(k *Key) { k.Versions[0].Wrapped = wrapped("k1", 9) }, true},
		{"Versions", func(k *Key) { k.Versions[0].RekID = "rek-2" }, true},
		{"Versions", func(k *Key) { k.Versions = append(k.Versions, version("k1", 2, t0)) }, true},
		{"CurrentVersion", func(k *Key) { k.CurrentVersion = 2 }, true},
		{"PrimaryZone", func(k *Key) { k.PrimaryZone = "zone-2" }, true},
		{"ReplicaZones", func(k *Key) { k.ReplicaZones = []string{"zone-2"} }, true},
		{"CreatedAt", func(k *Key) { k.CreatedAt++ }, true},
		{"UpdatedAt", func(k *Key) { k.UpdatedAt++ }, true},
		{"DeletionAt", func(k *Key) { k.DeletionAt = t0 }, true},
		{"PendingVersion", func(k *Key) { k.PendingVersion = 2 }, true},
		{"PendingZones", func(k *Key) { k.PendingZones = nil }, true},
		{"PendingSeq", func(k *Key) { k.PendingSeq = 4 }, true},
		{"PrimaryEpoch", func(k *Key) { k.PrimaryEpoch = 2 }, true},
		// The default key is one in every zone that holds it.
		{"Default", func(k *Key) { k.Default = true }, true},
		{"Revision", func(k *Key) { k.Revision = 99 }, false},
		{"ReplicaSeq", func(k *Key) { k.ReplicaSeq = 12 }, false},
		// Nil and empty lists encode differently but mean the same.
		{"Tags", func(k *Key) { k.Tags = nil }, false},
	}
	want := ReplicatedDigest(base())
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.field] = true
		k := base()
		tt.change(k)
		if got := ReplicatedDigest(k); (got != want) != tt.differs {
			t.Errorf("change of %s: digest changed = %v, want %v", tt.field, got != want, tt.differs)
		}
	}
	for f := range reflect.TypeFor[Key]().Fields() {
		if !covered[f.Name] {
			t.Errorf("Key.%s is not in the table: decide whether it is replicated", f.Name)
		}
	}
	if ReplicatedDigest(base()) != want {
		t.Error("ReplicatedDigest is not a function of the key")
	}
}

// TestFSM_ReplicatedDigests_Determinism: one log applied to two fresh
// FSMs, and a snapshot restored into a third, give equal digests.
func TestFSM_ReplicatedDigests_Determinism(t *testing.T) {
	steps := []step{
		{CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2", "zone-3")},
		{CmdCreateKey, withReplicas(createKey("k2", orgA), "zone-2")},
		{CmdCreateKey, createKey("k3", orgA)},
		{CmdRotateKey, rotate("k1", orgA, 2, t0+hour)},
		{CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-2", After: 0, Upto: 1, Now: t0, Entries: []ChangeEntry{
			{Seq: 1, KeyID: "r1", Key: remoteKey("r1", orgA, "zone-2", "zone-1")}}}},
		{CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: 3, Now: t0}},
	}
	f, g := newFSM(t), newFSM(t)
	for i, res := range applySteps(t, f, steps) {
		if res.Err != nil {
			t.Fatalf("step %d: %v", i, res.Err)
		}
	}
	applySteps(t, g, steps)
	want := f.ReplicatedDigests()
	if got := digestIDs(want); !slices.Equal(got, []string{"k1", "k2", "r1"}) {
		t.Fatalf("digests of %v, want [k1 k2 r1]", got)
	}
	if got := g.ReplicatedDigests(); !reflect.DeepEqual(got, want) {
		t.Errorf("same log, another FSM: got %+v, want %+v", got, want)
	}
	if got := roundTrip(t, f).ReplicatedDigests(); !reflect.DeepEqual(got, want) {
		t.Errorf("after snapshot and restore: got %+v, want %+v", got, want)
	}
	// The answer is a copy: changing it changes nothing in the state.
	want[0].ReplicaZones[0] = "zone-9"
	if k, _ := f.Key("k1"); k.ReplicaZones[0] != "zone-2" {
		t.Errorf("mutating the answer changed the stored key: %v", k.ReplicaZones)
	}
}
