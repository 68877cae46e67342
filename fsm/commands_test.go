package fsm

import (
	"bytes"
	"slices"
	"testing"
)

const (
	orgA = "org-a"
	orgB = "org-b"
)

var (
	testOrgs   = []string{orgA, orgB}
	testIDs    = []string{"k1", "k2", "k3"}
	testScopes = []string{
		IdempotencyScope(orgA, "create", "tok-1"),
		IdempotencyScope(orgA, "create", "tok-2"),
		IdempotencyScope(orgA, "rotate/k1", "tok-r"),
	}
)

// commandCase exercises one command type: setup builds the state, cmd is
// the command under test, check asserts on its result and the state.
type commandCase struct {
	name  string
	setup []step
	cmd   step
	check func(t *testing.T, f *FSM, res Result, index uint64)
}

func withToken(p CreateKeyV1, token string, expires int64) CreateKeyV1 {
	p.Idempotency = Idempotency{Token: token, ExpiresAt: expires}
	return p
}

func withPolicy(p CreateKeyV1, period, next int64) CreateKeyV1 {
	p.RotationPolicy = RotationPolicy{Period: period, NextRotationAt: next}
	return p
}

func protectedKey(p CreateKeyV1) CreateKeyV1 {
	p.Protected = true
	return p
}

// wantKey checks a successful result against the stored key.
func wantKey(t *testing.T, f *FSM, res Result, index uint64, state KeyState) *Key {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("Err = %v, want nil", res.Err)
	}
	if res.Key == nil {
		t.Fatal("Key = nil, want the changed key")
	}
	stored, ok := f.Key(res.Key.ID)
	if !ok || stored != res.Key {
		t.Fatalf("stored key %p (found %v), want result key %p", stored, ok, res.Key)
	}
	if res.Key.State != state {
		t.Errorf("State = %s, want %s", res.Key.State, state)
	}
	if res.Key.Revision != index {
		t.Errorf("Revision = %d, want %d", res.Key.Revision, index)
	}
	return res.Key
}

func commandCases() []commandCase {
	// Background: keys of another organization and a second key, so that
	// each command is seen to touch only its own key.
	background := []step{
		{CmdCreateKey, createKey("k2", orgA)},
		{CmdCreateKey, createKey("k3", orgB)},
	}
	setup := func(s ...step) []step { return append(slices.Clone(background), s...) }
	name2 := "renamed"
	tags2 := []string{"x", "y"}

	return append([]commandCase{
		{
			name:  "CreateKey",
			setup: setup(),
			cmd:   step{CmdCreateKey, withToken(createKey("k1", orgA), "tok-1", t0+day)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if k.CurrentVersion != 1 || len(k.Versions) != 1 || k.Versions[0].State != VersionStateEnabled {
					t.Errorf("versions = %+v current %d, want one enabled version 1", k.Versions, k.CurrentVersion)
				}
				if k.CreatedAt != t0 || k.UpdatedAt != t0 {
					t.Errorf("CreatedAt, UpdatedAt = %d, %d, want %d", k.CreatedAt, k.UpdatedAt, t0)
				}
				r, ok := f.Idempotency(IdempotencyScope(orgA, "create", "tok-1"))
				want := IdempotencyRecord{Scope: "org-a/create/tok-1", KeyID: "k1", Version: 1, ExpiresAt: t0 + day}
				if !ok || r != want {
					t.Errorf("idempotency record = %+v, %v, want %+v", r, ok, want)
				}
			},
		},
		{
			name:  "CreateKey_External",
			setup: setup(),
			cmd:   step{CmdCreateKey, createExternal("k1", orgA)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStatePendingImport)
				if k.CurrentVersion != 0 || len(k.Versions) != 0 {
					t.Errorf("versions = %+v current %d, want none", k.Versions, k.CurrentVersion)
				}
			},
		},
		{
			name:  "UpdateKey",
			setup: setup(step{CmdCreateKey, createKey("k1", orgA)}),
			cmd: step{CmdUpdateKey, UpdateKeyV1{
				KeyRefV1:       ref("k1", orgA, t0+hour),
				Name:           &name2,
				Tags:           &tags2,
				RotationPolicy: &RotationPolicy{Period: 90 * day, NextRotationAt: t0 + 90*day},
			}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if k.Name != name2 || !slices.Equal(k.Tags, tags2) || k.Description != "description of k1" {
					t.Errorf("name, tags, description = %q %q %q", k.Name, k.Tags, k.Description)
				}
				if want := (RotationPolicy{Period: 90 * day, NextRotationAt: t0 + 90*day}); k.RotationPolicy != want {
					t.Errorf("RotationPolicy = %+v, want %+v", k.RotationPolicy, want)
				}
				if k.UpdatedAt != t0+hour || k.CreatedAt != t0 {
					t.Errorf("UpdatedAt, CreatedAt = %d, %d", k.UpdatedAt, k.CreatedAt)
				}
			},
		},
		{
			name: "EnableKey",
			setup: setup(
				step{CmdCreateKey, createKey("k1", orgA)},
				step{CmdDisableKey, ref("k1", orgA, t0)},
			),
			cmd: step{CmdEnableKey, ref("k1", orgA, t0+hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				wantKey(t, f, res, index, KeyStateEnabled)
			},
		},
		{
			name:  "DisableKey",
			setup: setup(step{CmdCreateKey, createKey("k1", orgA)}),
			cmd:   step{CmdDisableKey, ref("k1", orgA, t0+hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				wantKey(t, f, res, index, KeyStateDisabled)
			},
		},
		{
			name:  "ProtectKey",
			setup: setup(step{CmdCreateKey, createKey("k1", orgA)}),
			cmd:   step{CmdProtectKey, ref("k1", orgA, t0+hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if k := wantKey(t, f, res, index, KeyStateEnabled); !k.Protected {
					t.Error("Protected = false, want true")
				}
			},
		},
		{
			name:  "UnprotectKey",
			setup: setup(step{CmdCreateKey, protectedKey(createKey("k1", orgA))}),
			cmd:   step{CmdUnprotectKey, ref("k1", orgA, t0+hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if k := wantKey(t, f, res, index, KeyStateEnabled); k.Protected {
					t.Error("Protected = true, want false")
				}
			},
		},
		{
			name:  "RotateKey",
			setup: setup(step{CmdCreateKey, withPolicy(createKey("k1", orgA), 30*day, t0+30*day)}),
			cmd: step{CmdRotateKey, func() RotateKeyV1 {
				p := rotate("k1", orgA, 2, t0+hour)
				p.Idempotency = Idempotency{Token: "tok-r", ExpiresAt: t0 + day}
				return p
			}()},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if k.CurrentVersion != 2 || len(k.Versions) != 2 {
					t.Fatalf("current %d with %d versions, want 2 and 2", k.CurrentVersion, len(k.Versions))
				}
				if v, _ := k.Version(2); !bytes.Equal(v.Wrapped, wrapped("k1", 2)) || v.State != VersionStateEnabled {
					t.Errorf("version 2 = %+v", v)
				}
				if k.RotationPolicy.NextRotationAt != t0+30*day {
					t.Errorf("manual rotation moved NextRotationAt to %d", k.RotationPolicy.NextRotationAt)
				}
				r, ok := f.Idempotency(IdempotencyScope(orgA, "rotate/k1", "tok-r"))
				if !ok || r.Version != 2 || r.KeyID != "k1" {
					t.Errorf("idempotency record = %+v, %v", r, ok)
				}
			},
		},
		{
			name:  "RotateKey_Scheduled",
			setup: setup(step{CmdCreateKey, withPolicy(createKey("k1", orgA), 30*day, t0+30*day)}),
			cmd: step{CmdRotateKey, func() RotateKeyV1 {
				p := rotate("k1", orgA, 2, t0+30*day)
				p.Scheduled, p.NextRotationAt = true, t0+60*day
				return p
			}()},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if k.CurrentVersion != 2 || k.RotationPolicy.NextRotationAt != t0+60*day {
					t.Errorf("current %d next %d, want 2 and %d", k.CurrentVersion, k.RotationPolicy.NextRotationAt, t0+60*day)
				}
			},
		},
		{
			name:  "ScheduleDeletion",
			setup: setup(step{CmdCreateKey, createKey("k1", orgA)}),
			cmd:   step{CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0+hour, t0+7*day)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if k := wantKey(t, f, res, index, KeyStatePendingDeletion); k.DeletionAt != t0+7*day {
					t.Errorf("DeletionAt = %d, want %d", k.DeletionAt, t0+7*day)
				}
			},
		},
		{
			name: "CancelDeletion",
			setup: setup(
				step{CmdCreateKey, createKey("k1", orgA)},
				step{CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+7*day)},
			),
			cmd: step{CmdCancelDeletion, ref("k1", orgA, t0+hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if k := wantKey(t, f, res, index, KeyStateDisabled); k.DeletionAt != 0 {
					t.Errorf("DeletionAt = %d, want 0", k.DeletionAt)
				}
			},
		},
		{
			name: "PurgeKey",
			setup: setup(
				step{CmdCreateKey, createKey("k1", orgA)},
				step{CmdRotateKey, rotate("k1", orgA, 2, t0)},
				step{CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+7*day)},
			),
			cmd: step{CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 7*day}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if res.Err != nil {
					t.Fatalf("Err = %v", res.Err)
				}
				if _, ok := f.Key("k1"); ok {
					t.Error("purged key still live")
				}
				if !f.IsTombstoned("k1") {
					t.Error("IsTombstoned = false")
				}
				if ts, _ := f.Tombstone("k1"); ts != (Tombstone{ID: "k1", Organization: orgA, PurgedAt: t0 + 7*day}) {
					t.Errorf("tombstone = %+v", ts)
				}
				k := res.Key
				if k == nil || k.Revision != index || len(k.Versions) != 2 {
					t.Fatalf("final key = %+v", k)
				}
				for _, v := range k.Versions {
					if v.State != VersionStateDestroyed || v.Wrapped != nil {
						t.Errorf("version %d = %+v, want destroyed without material", v.Number, v)
					}
				}
				if f.KeyCount() != 2 {
					t.Errorf("KeyCount = %d, want 2", f.KeyCount())
				}
			},
		},
		{
			name: "SetReplicaZones",
			setup: setup(
				step{CmdCreateKey, createKey("k1", orgA)},
			),
			cmd: step{CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref("k1", orgA, t0+hour), ReplicaZones: []string{"zone-2", "zone-3"}}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if !slices.Equal(k.ReplicaZones, []string{"zone-2", "zone-3"}) {
					t.Errorf("ReplicaZones = %v", k.ReplicaZones)
				}
				entries, upto := f.ChangesAfter(0, 0)
				if len(entries) != 1 || upto != 1 || entries[0].Key != k {
					t.Errorf("change log = %+v up to %d, want the key's new state at 1", entries, upto)
				}
			},
		},
		{
			name: "ReplicaAck",
			setup: setup(
				step{CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2")},
				step{CmdRotateKey, rotate("k1", orgA, 2, t0+hour)},
			),
			cmd: step{CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: 2, Now: t0 + 2*hour}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if res.Err != nil {
					t.Fatalf("Err = %v", res.Err)
				}
				k, _ := f.Key("k1")
				if k.CurrentVersion != 2 || k.PendingVersion != 0 || k.Revision != index {
					t.Errorf("after the ack: current %d pending %d revision %d, want 2, 0, %d",
						k.CurrentVersion, k.PendingVersion, k.Revision, index)
				}
				if got := f.ReplicationOf("zone-2").Acked; got != 2 {
					t.Errorf("Acked = %d, want 2", got)
				}
			},
		},
		{
			name:  "ApplyChanges",
			setup: nil,
			cmd: step{CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-0", After: 0, Upto: 5, Now: t0,
				Entries: []ChangeEntry{{Seq: 3, KeyID: "k2", Key: remoteKey("k2", orgA, "zone-0", "zone-1")}}}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if res.Err != nil {
					t.Fatalf("Err = %v", res.Err)
				}
				k, ok := f.Key("k2")
				if !ok || k.ReplicaSeq != 3 || k.Revision != 7 || k.PrimaryZone != "zone-0" {
					t.Fatalf("replica = %+v (found %v), want seq 3 and the primary's revision 7", k, ok)
				}
				if got := f.ReplicationOf("zone-0").Applied; got != 5 {
					t.Errorf("Applied = %d, want 5", got)
				}
			},
		},
		{
			name: "UpdatePrimary",
			setup: setup(
				step{CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2")},
				step{CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: 1, Now: t0}},
			),
			cmd: step{CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k1", orgA, t0+hour), NewPrimary: "zone-2"}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if k.PrimaryZone != "zone-2" || !slices.Equal(k.ReplicaZones, []string{"zone-1"}) || k.PrimaryEpoch != 1 {
					t.Errorf("after hand-over: primary %s replicas %v epoch %d", k.PrimaryZone, k.ReplicaZones, k.PrimaryEpoch)
				}
				if entries, _ := f.ChangesAfter(1, 0); len(entries) != 1 || entries[0].Key != k {
					t.Errorf("the hand-over is not in the change log: %+v", entries)
				}
			},
		},
		{
			name: "RenumberChanges",
			setup: setup(
				step{CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2")},
				step{CmdCreateKey, withReplicas(createKey("k4", orgA), "zone-2")},
				step{CmdRotateKey, rotate("k1", orgA, 2, t0)},
			),
			cmd:   step{CmdRenumberChanges, RenumberChangesV1{Above: 100}},
			check: checkRenumberChanges,
		},
		{
			name:  "RemoveNode",
			setup: setup(),
			cmd:   step{CmdRemoveNode, RemoveNodeV1{NodeID: "n3", Zone: "zone-1", RemovedAt: t0}},
			check: checkRemoveNode,
		},
		{
			name: "ExpireIdempotency",
			setup: setup(
				step{CmdCreateKey, withToken(createKey("k1", orgA), "tok-1", t0+day)},
				step{CmdCreateKey, withToken(createKey("k4", orgA), "tok-2", t0+2*day)},
			),
			cmd: step{CmdExpireIdempotency, ExpireIdempotencyV1{Now: t0 + day}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if res.Err != nil || res.Key != nil {
					t.Fatalf("Result = %+v, want zero", res)
				}
				if _, ok := f.Idempotency(IdempotencyScope(orgA, "create", "tok-1")); ok {
					t.Error("expired record kept")
				}
				if _, ok := f.Idempotency(IdempotencyScope(orgA, "create", "tok-2")); !ok {
					t.Error("live record dropped")
				}
				if f.HasExpiredIdempotency(t0 + day) {
					t.Error("HasExpiredIdempotency = true after expiry")
				}
			},
		},
	}, append(importCommandCases(setup), tenancyCommandCases(setup)...)...)
}

func TestFSM_Commands_CoverEveryType(t *testing.T) {
	seen := map[CommandType]bool{}
	for _, c := range commandCases() {
		seen[c.cmd.typ] = true
	}
	for typ := CommandType(1); typ < IgnorableCommandFlag; typ++ {
		if decoderFor(typ) != nil && !seen[typ] {
			t.Errorf("command type %d has no case", typ)
		}
	}
	for typ := CmdCreateKey; typ <= CmdRevokeToken; typ++ {
		if decoderFor(typ) == nil {
			t.Errorf("command type %d has no decoder", typ)
		}
	}
}

func TestFSM_Commands_Apply(t *testing.T) {
	for _, c := range commandCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFSM(t)
			for i, r := range applySteps(t, f, c.setup) {
				if r.Err != nil {
					t.Fatalf("setup step %d: %v", i, r.Err)
				}
			}
			index := f.AppliedIndex() + 1
			res := apply(t, f, c.cmd.typ, c.cmd.payload)
			if f.AppliedIndex() != index {
				t.Errorf("AppliedIndex = %d, want %d", f.AppliedIndex(), index)
			}
			c.check(t, f, res, index)
		})
	}
}

func TestFSM_Commands_SnapshotRestore(t *testing.T) {
	for _, c := range commandCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFSM(t)
			applySteps(t, f, append(slices.Clone(c.setup), c.cmd))
			want := snapshotBytes(t, f)
			g := roundTrip(t, f)
			if got := snapshotBytes(t, g); !bytes.Equal(got, want) {
				t.Errorf("restored snapshot differs:\ngot  %s\nwant %s", got, want)
			}
			if got, want := queryAnswers(t, g, testOrgs, testIDs, testScopes),
				queryAnswers(t, f, testOrgs, testIDs, testScopes); got != want {
				t.Errorf("restored answers differ:\ngot  %s\nwant %s", got, want)
			}
			// The restored FSM goes on applying like the original.
			next := step{CmdCreateKey, createKey("k9", orgB)}
			applySteps(t, f, []step{next})
			applySteps(t, g, []step{next})
			if !bytes.Equal(snapshotBytes(t, f), snapshotBytes(t, g)) {
				t.Error("snapshots differ after one more command")
			}
		})
	}
}

func TestFSM_Commands_Determinism(t *testing.T) {
	for _, c := range commandCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			log := append(slices.Clone(c.setup), c.cmd)
			a, b := newFSM(t), newFSM(t)
			ra, rb := applySteps(t, a, log), applySteps(t, b, log)
			if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
				t.Error("two FSMs that applied the same log have different snapshots")
			}
			if qa, qb := queryAnswers(t, a, testOrgs, testIDs, testScopes),
				queryAnswers(t, b, testOrgs, testIDs, testScopes); qa != qb {
				t.Errorf("answers differ:\n%s\n%s", qa, qb)
			}
			for i := range ra {
				ja, _ := ra[i].MarshalJSON()
				jb, _ := rb[i].MarshalJSON()
				if !bytes.Equal(ja, jb) {
					t.Errorf("result %d differs: %s vs %s", i, ja, jb)
				}
			}
		})
	}
}
