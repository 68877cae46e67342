package fsm

import (
	"errors"
	"testing"
)

func TestFSM_CreateKey_Idempotent(t *testing.T) {
	f := newFSM(t)
	first := mustApply(t, f, CmdCreateKey, withToken(createKey("k1", orgA), "tok", t0+day))

	// A retry within the expiry carries a new id (the proposer chose it
	// again) and gets the first key back; nothing changes.
	retry := withToken(createKey("k2", orgA), "tok", t0+2*day)
	retry.Now = t0 + day - 1
	before := stateBytes(t, f)
	res := apply(t, f, CmdCreateKey, retry)
	if res.Err != nil || res.Key != first {
		t.Fatalf("retry = %+v, want the first key", res)
	}
	if _, ok := f.Key("k2"); ok || f.KeyCount() != 1 {
		t.Error("retry created a key")
	}
	if r, _ := f.Idempotency(IdempotencyScope(orgA, "create", "tok")); r.ExpiresAt != t0+day {
		t.Errorf("retry moved the record's expiry to %d", r.ExpiresAt)
	}
	if stateBytes(t, f) != before {
		t.Error("retry changed the state")
	}

	// The same token in another organization is another operation.
	other := withToken(createKey("k3", orgB), "tok", t0+day)
	if k := mustApply(t, f, CmdCreateKey, other); k.ID != "k3" {
		t.Errorf("other organization got key %s", k.ID)
	}

	// The retry answers with the key as it is now.
	disabled := mustApply(t, f, CmdDisableKey, ref("k1", orgA, t0+hour))
	if res := apply(t, f, CmdCreateKey, retry); res.Key != disabled {
		t.Errorf("retry after disable = %+v, want the disabled key", res.Key)
	}

	// At expiry the record no longer counts, even before it is dropped.
	atExpiry := retry
	atExpiry.Now = t0 + day
	if !f.HasExpiredIdempotency(t0 + day) {
		t.Error("HasExpiredIdempotency = false at expiry")
	}
	if f.HasExpiredIdempotency(t0 + day - 1) {
		t.Error("HasExpiredIdempotency = true before expiry")
	}
	k2 := mustApply(t, f, CmdCreateKey, atExpiry)
	if k2.ID != "k2" {
		t.Fatalf("create after expiry = %s, want k2", k2.ID)
	}
	if r, _ := f.Idempotency(IdempotencyScope(orgA, "create", "tok")); r.KeyID != "k2" || r.ExpiresAt != t0+2*day {
		t.Errorf("record = %+v, want k2 until %d", r, t0+2*day)
	}

	// After CmdExpireIdempotency the record is gone and the token is free.
	mustApplyNoKey(t, f, CmdExpireIdempotency, ExpireIdempotencyV1{Now: t0 + 2*day})
	if _, ok := f.Idempotency(IdempotencyScope(orgA, "create", "tok")); ok {
		t.Fatal("record kept after expiry")
	}
	again := withToken(createKey("k4", orgA), "tok", t0+3*day)
	again.Now = t0 + 2*day
	if k := mustApply(t, f, CmdCreateKey, again); k.ID != "k4" {
		t.Errorf("create after dropped record = %s, want k4", k.ID)
	}
}

func mustApplyNoKey(t *testing.T, f *FSM, typ CommandType, payload any) {
	t.Helper()
	if res := apply(t, f, typ, payload); res.Err != nil || res.Key != nil {
		t.Fatalf("Result = %+v, want zero", res)
	}
}

// A retried create whose key has since been purged reports not found
// rather than creating a second key.
func TestFSM_CreateKey_IdempotentAfterPurge(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withToken(createKey("k1", orgA), "tok", t0+30*day))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+7*day))
	mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + 7*day})
	retry := withToken(createKey("k2", orgA), "tok", t0+31*day)
	retry.Now = t0 + 8*day
	if res := apply(t, f, CmdCreateKey, retry); !errors.Is(res.Err, ErrKeyNotFound) {
		t.Fatalf("Err = %v, want ErrKeyNotFound", res.Err)
	}
	if f.KeyCount() != 0 {
		t.Error("retry created a key")
	}
}

func TestFSM_RotateKey_Idempotent(t *testing.T) {
	f := newFSM(t)
	k1 := mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
	p := rotate("k1", orgA, 2, t0+hour)
	p.IfRevision = k1.Revision
	p.Idempotency = Idempotency{Token: "tok", ExpiresAt: t0 + day}
	k2 := mustApply(t, f, CmdRotateKey, p)
	if k2.CurrentVersion != 2 {
		t.Fatalf("CurrentVersion = %d, want 2", k2.CurrentVersion)
	}

	// The retry carries the same If-Match (now stale), version number and
	// fresh material: it returns the key unchanged.
	retry := p
	retry.NewVersion = version("k1", 2, t0+2*hour)
	retry.NewVersion.Wrapped = []byte("other material")
	retry.Now = t0 + 2*hour
	res := apply(t, f, CmdRotateKey, retry)
	if res.Err != nil || res.Key != k2 {
		t.Fatalf("retry = %+v, want the rotated key", res)
	}
	// Even once the key moved on (disabled), the retry answers with it.
	k3 := mustApply(t, f, CmdDisableKey, ref("k1", orgA, t0+3*hour))
	if res := apply(t, f, CmdRotateKey, retry); res.Err != nil || res.Key != k3 {
		t.Fatalf("retry after disable = %+v", res)
	}
	mustApply(t, f, CmdEnableKey, ref("k1", orgA, t0+3*hour))

	// The same token on another key is another operation.
	mustApply(t, f, CmdCreateKey, createKey("k2", orgA))
	other := rotate("k2", orgA, 2, t0+hour)
	other.Idempotency = p.Idempotency
	if k := mustApply(t, f, CmdRotateKey, other); k.ID != "k2" || k.CurrentVersion != 2 {
		t.Errorf("rotate k2 = %+v", k)
	}

	// After expiry and CmdExpireIdempotency the token rotates again.
	mustApplyNoKey(t, f, CmdExpireIdempotency, ExpireIdempotencyV1{Now: t0 + day})
	if _, ok := f.Idempotency(IdempotencyScope(orgA, "rotate/k1", "tok")); ok {
		t.Fatal("record kept after expiry")
	}
	after := rotate("k1", orgA, 3, t0+day)
	after.Idempotency = Idempotency{Token: "tok", ExpiresAt: t0 + 2*day}
	if k := mustApply(t, f, CmdRotateKey, after); k.CurrentVersion != 3 {
		t.Errorf("CurrentVersion = %d, want 3", k.CurrentVersion)
	}
	if r, _ := f.Idempotency(IdempotencyScope(orgA, "rotate/k1", "tok")); r.Version != 3 {
		t.Errorf("record = %+v, want version 3", r)
	}

	// Another organization's key is not found, token or not.
	wrongOrg := rotate("k1", orgB, 4, t0+day)
	wrongOrg.Idempotency = after.Idempotency
	if res := apply(t, f, CmdRotateKey, wrongOrg); !errors.Is(res.Err, ErrKeyNotFound) {
		t.Errorf("Err = %v, want ErrKeyNotFound", res.Err)
	}
}

func TestIdempotencyScope(t *testing.T) {
	if got, want := IdempotencyScope("org", "rotate/k1", "tok"), "org/rotate/k1/tok"; got != want {
		t.Errorf("IdempotencyScope = %q, want %q", got, want)
	}
}
