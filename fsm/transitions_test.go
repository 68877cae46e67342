package fsm

import (
	"errors"
	"testing"
)

// keyIn creates key k1 of orgA in the given state.
func keyIn(t *testing.T, f *FSM, state KeyState, protected bool) *Key {
	t.Helper()
	p := createKey("k1", orgA)
	if state == KeyStatePendingImport {
		p = createExternal("k1", orgA)
	}
	p.Protected = protected && state != KeyStatePendingDeletion
	k := mustApply(t, f, CmdCreateKey, p)
	switch state {
	case KeyStateDisabled:
		k = mustApply(t, f, CmdDisableKey, ref("k1", orgA, t0))
	case KeyStatePendingDeletion:
		k = mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+7*day))
	}
	if k.State != state {
		t.Fatalf("setup: key in %s, want %s", k.State, state)
	}
	return k
}

// opCommand builds the command for a lifecycle operation on k.
func opCommand(op string, k *Key) step {
	now := t0 + hour
	r := ref(k.ID, k.Organization, now)
	switch op {
	case OpEnable:
		return step{CmdEnableKey, r}
	case OpDisable:
		return step{CmdDisableKey, r}
	case OpProtect:
		return step{CmdProtectKey, r}
	case OpUnprotect:
		return step{CmdUnprotectKey, r}
	case OpRotate:
		return step{CmdRotateKey, rotate(k.ID, k.Organization, uint32(len(k.Versions))+1, now)}
	case OpScheduleDeletion:
		return step{CmdScheduleDeletion, scheduleDeletion(k.ID, k.Organization, now, now+7*day)}
	case OpCancelDeletion:
		return step{CmdCancelDeletion, r}
	case OpPurge:
		return step{CmdPurgeKey, PurgeKeyV1{KeyID: k.ID, Now: t0 + 30*day}}
	case "update":
		name := "new-name"
		return step{CmdUpdateKey, UpdateKeyV1{KeyRefV1: r, Name: &name}}
	}
	panic("unknown op " + op)
}

// purged marks a transition whose outcome is a tombstone.
const purged KeyState = "purged"

func TestFSM_Transitions(t *testing.T) {
	const (
		en  = KeyStateEnabled
		dis = KeyStateDisabled
		pd  = KeyStatePendingDeletion
		pi  = KeyStatePendingImport
	)
	tests := []struct {
		name      string
		from      KeyState
		protected bool
		op        string
		want      KeyState // state after success or no-op
		noop      bool     // success that keeps the key (and revision) as is
		wantErr   error    // sentinel, or
		wantTrans bool     // *TransitionError{KeyID, From: from, Op: op}
	}{
		{name: "enable enabled", from: en, op: OpEnable, want: en, noop: true},
		{name: "enable disabled", from: dis, op: OpEnable, want: en},
		{name: "enable pending deletion", from: pd, op: OpEnable, wantTrans: true},
		{name: "enable pending import", from: pi, op: OpEnable, wantTrans: true},

		{name: "disable enabled", from: en, op: OpDisable, want: dis},
		{name: "disable disabled", from: dis, op: OpDisable, want: dis, noop: true},
		{name: "disable pending deletion", from: pd, op: OpDisable, wantTrans: true},
		{name: "disable pending import", from: pi, op: OpDisable, wantTrans: true},

		{name: "protect enabled", from: en, op: OpProtect, want: en},
		{name: "protect protected", from: en, protected: true, op: OpProtect, want: en, noop: true},
		{name: "protect disabled", from: dis, op: OpProtect, want: dis},
		{name: "protect pending import", from: pi, op: OpProtect, want: pi},
		{name: "protect pending deletion", from: pd, op: OpProtect, wantTrans: true},

		{name: "unprotect enabled protected", from: en, protected: true, op: OpUnprotect, want: en},
		{name: "unprotect enabled unprotected", from: en, op: OpUnprotect, want: en, noop: true},
		{name: "unprotect disabled protected", from: dis, protected: true, op: OpUnprotect, want: dis},
		{name: "unprotect pending import protected", from: pi, protected: true, op: OpUnprotect, want: pi},
		{name: "unprotect pending deletion", from: pd, op: OpUnprotect, wantTrans: true},

		{name: "rotate enabled", from: en, op: OpRotate, want: en},
		{name: "rotate enabled protected", from: en, protected: true, op: OpRotate, want: en},
		{name: "rotate disabled", from: dis, op: OpRotate, wantTrans: true},
		{name: "rotate pending deletion", from: pd, op: OpRotate, wantTrans: true},
		{name: "rotate pending import", from: pi, op: OpRotate, wantTrans: true},

		{name: "schedule deletion enabled", from: en, op: OpScheduleDeletion, want: pd},
		{name: "schedule deletion disabled", from: dis, op: OpScheduleDeletion, want: pd},
		{name: "schedule deletion pending import", from: pi, op: OpScheduleDeletion, want: pd},
		{name: "schedule deletion pending deletion", from: pd, op: OpScheduleDeletion, wantTrans: true},
		{name: "schedule deletion enabled protected", from: en, protected: true, op: OpScheduleDeletion, wantErr: ErrKeyProtected},
		{name: "schedule deletion disabled protected", from: dis, protected: true, op: OpScheduleDeletion, wantErr: ErrKeyProtected},
		{name: "schedule deletion pending import protected", from: pi, protected: true, op: OpScheduleDeletion, wantErr: ErrKeyProtected},

		{name: "cancel deletion pending deletion", from: pd, op: OpCancelDeletion, want: dis},
		{name: "cancel deletion enabled", from: en, op: OpCancelDeletion, wantTrans: true},
		{name: "cancel deletion disabled", from: dis, op: OpCancelDeletion, wantTrans: true},
		{name: "cancel deletion pending import", from: pi, op: OpCancelDeletion, wantTrans: true},

		{name: "purge pending deletion", from: pd, op: OpPurge, want: purged},
		{name: "purge enabled", from: en, op: OpPurge, wantTrans: true},
		{name: "purge disabled", from: dis, op: OpPurge, wantTrans: true},
		{name: "purge pending import", from: pi, op: OpPurge, wantTrans: true},

		{name: "update enabled", from: en, op: "update", want: en},
		{name: "update disabled", from: dis, op: "update", want: dis},
		{name: "update pending deletion", from: pd, op: "update", want: pd},
		{name: "update pending import", from: pi, op: "update", want: pi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFSM(t)
			before := keyIn(t, f, tt.from, tt.protected)
			cmd := opCommand(tt.op, before)
			index := f.AppliedIndex() + 1
			res := apply(t, f, cmd.typ, cmd.payload)
			after, live := f.Key("k1")

			if f.AppliedIndex() != index {
				t.Errorf("AppliedIndex = %d, want %d (refused or not)", f.AppliedIndex(), index)
			}
			if tt.wantErr != nil || tt.wantTrans {
				if after != before {
					t.Errorf("refused command changed the key: %+v", after)
				}
				if res.Key != nil {
					t.Errorf("refused command returned key %+v", res.Key)
				}
				if tt.wantErr != nil && !errors.Is(res.Err, tt.wantErr) {
					t.Fatalf("Err = %v, want %v", res.Err, tt.wantErr)
				}
				if tt.wantTrans {
					var te *TransitionError
					if !errors.As(res.Err, &te) {
						t.Fatalf("Err = %v, want *TransitionError", res.Err)
					}
					if want := (TransitionError{KeyID: "k1", From: tt.from, Op: tt.op}); *te != want {
						t.Errorf("TransitionError = %+v, want %+v", *te, want)
					}
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("Err = %v, want nil", res.Err)
			}
			if tt.want == purged {
				if live || !f.IsTombstoned("k1") {
					t.Errorf("live %v, tombstoned %v; want purged", live, f.IsTombstoned("k1"))
				}
				return
			}
			if res.Key != after {
				t.Errorf("result key is not the stored key")
			}
			if after.State != tt.want {
				t.Errorf("State = %s, want %s", after.State, tt.want)
			}
			if tt.noop {
				if after != before || after.Revision != before.Revision {
					t.Errorf("no-op changed the key: revision %d -> %d", before.Revision, after.Revision)
				}
				return
			}
			if after.Revision != index || after.UpdatedAt != t0+hour {
				t.Errorf("Revision, UpdatedAt = %d, %d, want %d, %d", after.Revision, after.UpdatedAt, index, t0+hour)
			}
			wantProtected := tt.protected
			switch tt.op {
			case OpProtect:
				wantProtected = true
			case OpUnprotect:
				wantProtected = false
			}
			if after.Protected != wantProtected {
				t.Errorf("Protected = %v, want %v", after.Protected, wantProtected)
			}
			// The value readers held before is untouched.
			if before.State != tt.from || before.Revision == index {
				t.Errorf("the previous *Key was mutated: %+v", before)
			}
		})
	}
}

// Every command naming a key answers "not found" for another
// organization's key, exactly as for a missing key, and changes nothing.
func TestFSM_OrganizationMismatch_IsNotFound(t *testing.T) {
	for _, op := range []string{OpEnable, OpDisable, OpProtect, OpUnprotect, OpRotate,
		OpScheduleDeletion, OpCancelDeletion, "update"} {
		t.Run(op, func(t *testing.T) {
			f := newFSM(t)
			k := keyIn(t, f, KeyStateDisabled, false)
			if op == OpCancelDeletion {
				k = mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
			}
			other := *k
			other.Organization = orgB
			cmd := opCommand(op, &other)
			res := apply(t, f, cmd.typ, cmd.payload)
			if !errors.Is(res.Err, ErrKeyNotFound) {
				t.Fatalf("Err = %v, want ErrKeyNotFound", res.Err)
			}
			missing := other
			missing.ID, missing.Organization = "nope", orgA
			cmd = opCommand(op, &missing)
			resMissing := apply(t, f, cmd.typ, cmd.payload)
			if got, want := res.Err.Error(), "key k1: "+ErrKeyNotFound.Error(); got != want {
				t.Errorf("message %q, want %q", got, want)
			}
			if !errors.Is(resMissing.Err, ErrKeyNotFound) {
				t.Errorf("missing key: Err = %v, want ErrKeyNotFound", resMissing.Err)
			}
			if got, _ := f.Key("k1"); got != k {
				t.Error("key changed")
			}
		})
	}
}

func TestFSM_PurgeKey_Missing(t *testing.T) {
	f := newFSM(t)
	res := apply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "nope", Now: t0})
	if !errors.Is(res.Err, ErrKeyNotFound) {
		t.Fatalf("Err = %v, want ErrKeyNotFound", res.Err)
	}
}

func TestFSM_IfRevision(t *testing.T) {
	f := newFSM(t)
	k := keyIn(t, f, KeyStateEnabled, false)

	stale := ref("k1", orgA, t0+hour)
	stale.IfRevision = k.Revision + 100
	for _, cmd := range []step{
		{CmdDisableKey, stale},
		{CmdEnableKey, stale},
		{CmdProtectKey, stale},
		{CmdUnprotectKey, stale},
		{CmdCancelDeletion, stale},
		{CmdUpdateKey, UpdateKeyV1{KeyRefV1: stale}},
		{CmdRotateKey, RotateKeyV1{KeyRefV1: stale, NewVersion: version("k1", 2, t0)}},
		{CmdScheduleDeletion, ScheduleDeletionV1{KeyRefV1: stale, DeletionAt: t0 + day}},
	} {
		res := apply(t, f, cmd.typ, cmd.payload)
		if !errors.Is(res.Err, ErrRevisionMismatch) {
			t.Errorf("command %d: Err = %v, want ErrRevisionMismatch", cmd.typ, res.Err)
		}
	}
	if got, _ := f.Key("k1"); got != k {
		t.Fatal("refused commands changed the key")
	}

	// Existence is checked first.
	missing := stale
	missing.KeyID = "nope"
	if res := apply(t, f, CmdDisableKey, missing); !errors.Is(res.Err, ErrKeyNotFound) {
		t.Errorf("missing key with stale revision: Err = %v, want ErrKeyNotFound", res.Err)
	}

	current := ref("k1", orgA, t0+hour)
	current.IfRevision = k.Revision
	k2 := mustApply(t, f, CmdDisableKey, current)
	if k2.State != KeyStateDisabled {
		t.Errorf("State = %s, want disabled", k2.State)
	}
	// The old revision no longer matches.
	current.Now = t0 + 2*hour
	if res := apply(t, f, CmdEnableKey, current); !errors.Is(res.Err, ErrRevisionMismatch) {
		t.Errorf("Err = %v, want ErrRevisionMismatch", res.Err)
	}
}

func TestFSM_RotateKey_VersionConflict(t *testing.T) {
	f := newFSM(t)
	k := keyIn(t, f, KeyStateEnabled, false)
	for _, n := range []uint32{0, 1, 3, 7} {
		res := apply(t, f, CmdRotateKey, rotate("k1", orgA, n, t0+hour))
		if !errors.Is(res.Err, ErrVersionConflict) {
			t.Errorf("version %d: Err = %v, want ErrVersionConflict", n, res.Err)
		}
	}
	mustApply(t, f, CmdRotateKey, rotate("k1", orgA, 2, t0+hour))
	// A second proposer that read version 1 loses.
	if res := apply(t, f, CmdRotateKey, rotate("k1", orgA, 2, t0+hour)); !errors.Is(res.Err, ErrVersionConflict) {
		t.Errorf("Err = %v, want ErrVersionConflict", res.Err)
	}
	got, _ := f.Key("k1")
	if got.CurrentVersion != 2 || len(got.Versions) != 2 || k.CurrentVersion != 1 {
		t.Errorf("current %d of %d versions", got.CurrentVersion, len(got.Versions))
	}
}

func TestFSM_RotateKey_Invalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *RotateKeyV1)
	}{
		{"no wrapped material", func(p *RotateKeyV1) { p.NewVersion.Wrapped = nil }},
		{"no rek id", func(p *RotateKeyV1) { p.NewVersion.RekID = "" }},
		{"destroyed version", func(p *RotateKeyV1) { p.NewVersion.State = VersionStateDestroyed }},
		{"token already expired", func(p *RotateKeyV1) { p.Idempotency = Idempotency{Token: "t", ExpiresAt: p.Now} }},
		{"scheduled before due", func(p *RotateKeyV1) { p.Scheduled, p.Now, p.NextRotationAt = true, t0+29*day, t0+60*day }},
		{"scheduled without moving the schedule", func(p *RotateKeyV1) { p.Scheduled, p.Now, p.NextRotationAt = true, t0+31*day, t0+30*day }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			k := mustApply(t, f, CmdCreateKey, withPolicy(createKey("k1", orgA), 30*day, t0+30*day))
			p := rotate("k1", orgA, 2, t0+hour)
			tt.mutate(&p)
			res := apply(t, f, CmdRotateKey, p)
			if !errors.Is(res.Err, ErrInvalidCommand) {
				t.Fatalf("Err = %v, want ErrInvalidCommand", res.Err)
			}
			if got, _ := f.Key("k1"); got != k {
				t.Error("key changed")
			}
		})
	}
}

// A scheduled rotation proposed from a stale tick, after the policy was
// turned off, is refused.
func TestFSM_RotateKey_ScheduledAfterPolicyOff(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k1", orgA), 30*day, t0+30*day))
	mustApply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0+hour), RotationPolicy: &RotationPolicy{}})
	p := rotate("k1", orgA, 2, t0+31*day)
	p.Scheduled, p.NextRotationAt = true, t0+61*day
	if res := apply(t, f, CmdRotateKey, p); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("Err = %v, want ErrInvalidCommand", res.Err)
	}
}

func TestFSM_CreateKey_Invalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *CreateKeyV1)
		want   error
	}{
		{"empty id", func(p *CreateKeyV1) { p.ID = "" }, ErrInvalidCommand},
		{"slash in id", func(p *CreateKeyV1) { p.ID = "a/b" }, ErrInvalidCommand},
		{"empty organization", func(p *CreateKeyV1) { p.Organization = "" }, ErrInvalidCommand},
		{"empty usage", func(p *CreateKeyV1) { p.Usage = "" }, ErrInvalidCommand},
		{"empty algorithm", func(p *CreateKeyV1) { p.Algorithm = "" }, ErrInvalidCommand},
		{"empty origin", func(p *CreateKeyV1) { p.Origin = "" }, ErrInvalidCommand},
		{"unknown origin", func(p *CreateKeyV1) { p.Origin = "hsm" }, ErrInvalidCommand},
		{"first version 2", func(p *CreateKeyV1) { p.FirstVersion.Number = 2 }, ErrInvalidCommand},
		{"no first version", func(p *CreateKeyV1) { p.FirstVersion = Version{} }, ErrInvalidCommand},
		{"no wrapped material", func(p *CreateKeyV1) { p.FirstVersion.Wrapped = nil }, ErrInvalidCommand},
		{"no rek id", func(p *CreateKeyV1) { p.FirstVersion.RekID = "" }, ErrInvalidCommand},
		{"external with version", func(p *CreateKeyV1) { p.Origin = OriginExternal }, ErrInvalidCommand},
		{"negative period", func(p *CreateKeyV1) { p.RotationPolicy.Period = -1 }, ErrInvalidCommand},
		{"due at creation", func(p *CreateKeyV1) { p.RotationPolicy = RotationPolicy{Period: day, NextRotationAt: p.Now} }, ErrInvalidCommand},
		{"token already expired", func(p *CreateKeyV1) { p.Idempotency = Idempotency{Token: "t"} }, ErrInvalidCommand},
		{"existing id", func(p *CreateKeyV1) { p.ID = "k0" }, ErrKeyExists},
		{"existing id in another organization", func(p *CreateKeyV1) { p.ID, p.Organization = "k0", orgB }, ErrKeyExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			mustApply(t, f, CmdCreateKey, createKey("k0", orgA))
			before := stateBytes(t, f)
			p := createKey("k1", orgA)
			tt.mutate(&p)
			res := apply(t, f, CmdCreateKey, p)
			if !errors.Is(res.Err, tt.want) {
				t.Fatalf("Err = %v, want %v", res.Err, tt.want)
			}
			if res.Key != nil {
				t.Errorf("Key = %+v, want nil", res.Key)
			}
			if after := stateBytes(t, f); after != before {
				t.Errorf("state changed:\n%s\nwant\n%s", after, before)
			}
		})
	}
}

func TestFSM_UpdateKey(t *testing.T) {
	f := newFSM(t)
	k := mustApply(t, f, CmdCreateKey, withPolicy(createKey("k1", orgA), day, t0+day))

	// No fields: a no-op.
	if got := mustApply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0+hour)}); got != k {
		t.Errorf("empty update changed the key")
	}
	// Description only; the rest is untouched.
	desc := "new"
	got := mustApply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0+hour), Description: &desc})
	if got.Description != desc || got.Name != k.Name || got.RotationPolicy != k.RotationPolicy || len(got.Tags) != 1 {
		t.Errorf("update = %+v", got)
	}
	// Empty tags become [] and the policy is replaced; Period 0 clears NextRotationAt.
	empty := []string{}
	got = mustApply(t, f, CmdUpdateKey, UpdateKeyV1{
		KeyRefV1: ref("k1", orgA, t0+hour), Tags: &empty,
		RotationPolicy: &RotationPolicy{Period: 0, NextRotationAt: t0 + 5*day},
	})
	if got.Tags == nil || len(got.Tags) != 0 || got.RotationPolicy != (RotationPolicy{}) {
		t.Errorf("tags %#v policy %+v", got.Tags, got.RotationPolicy)
	}
	bad := RotationPolicy{Period: -day}
	res := apply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", orgA, t0+hour), RotationPolicy: &bad})
	if !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("Err = %v, want ErrInvalidCommand", res.Err)
	}
}

// Cancelling the deletion of a key that never received material returns
// it to pending_import, so that enabled and disabled keys always have a
// current version.
func TestFSM_CancelDeletion_PendingImport(t *testing.T) {
	f := newFSM(t)
	keyIn(t, f, KeyStatePendingImport, false)
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
	k := mustApply(t, f, CmdCancelDeletion, ref("k1", orgA, t0+hour))
	if k.State != KeyStatePendingImport || k.DeletionAt != 0 {
		t.Errorf("State %s DeletionAt %d, want pending_import and 0", k.State, k.DeletionAt)
	}
}

func TestFSM_ScheduleDeletion_NotInFuture(t *testing.T) {
	f := newFSM(t)
	k := keyIn(t, f, KeyStateEnabled, false)
	for _, at := range []int64{0, t0, t0 + hour} {
		res := apply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0+hour, at))
		if !errors.Is(res.Err, ErrInvalidCommand) {
			t.Errorf("DeletionAt %d: Err = %v, want ErrInvalidCommand", at, res.Err)
		}
	}
	if got, _ := f.Key("k1"); got != k {
		t.Error("key changed")
	}
}

func TestFSM_PurgeKey_Timing(t *testing.T) {
	f := newFSM(t)
	keyIn(t, f, KeyStatePendingDeletion, false) // DeletionAt t0+7d
	k, _ := f.Key("k1")

	// Before its time: refused, key kept.
	res := apply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 7*day - 1})
	var te *TransitionError
	if !errors.As(res.Err, &te) || te.Op != OpPurge || te.From != KeyStatePendingDeletion {
		t.Fatalf("Err = %v, want TransitionError op purge", res.Err)
	}
	if got, ok := f.Key("k1"); !ok || got != k || f.IsTombstoned("k1") {
		t.Fatal("early purge changed the state")
	}

	// A purge racing a cancel is refused.
	g := roundTrip(t, f)
	mustApply(t, g, CmdCancelDeletion, ref("k1", orgA, t0+day))
	if res := apply(t, g, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 8*day}); !errors.As(res.Err, &te) {
		t.Errorf("purge after cancel: Err = %v, want TransitionError", res.Err)
	}

	// At its time: tombstoned, and the id can never come back.
	purgedKey := mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 7*day})
	if purgedKey.Versions[0].Wrapped != nil || k.Versions[0].Wrapped == nil {
		t.Error("purge must clear material in its copy only")
	}
	if _, ok := f.Key("k1"); ok || !f.IsTombstoned("k1") || f.KeyCount() != 0 {
		t.Fatal("key not purged")
	}
	if keys, _ := f.ListKeys(ListQuery{Organization: orgA}); len(keys) != 0 {
		t.Errorf("ListKeys after purge = %d keys", len(keys))
	}
	for _, org := range []string{orgA, orgB} {
		if res := apply(t, f, CmdCreateKey, createKey("k1", org)); !errors.Is(res.Err, ErrKeyExists) {
			t.Errorf("re-create in %s: Err = %v, want ErrKeyExists", org, res.Err)
		}
	}
	if res := apply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 8*day}); !errors.Is(res.Err, ErrKeyNotFound) {
		t.Errorf("second purge: Err = %v, want ErrKeyNotFound", res.Err)
	}
	if res := apply(t, f, CmdCancelDeletion, ref("k1", orgA, t0+8*day)); !errors.Is(res.Err, ErrKeyNotFound) {
		t.Errorf("cancel after purge: Err = %v, want ErrKeyNotFound", res.Err)
	}
	// The tombstone survives snapshots.
	if h := roundTrip(t, f); !h.IsTombstoned("k1") {
		t.Error("tombstone lost in snapshot")
	}
}
