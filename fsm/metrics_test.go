package fsm

import (
	"maps"
	"testing"
)

func TestFSM_KeysByState(t *testing.T) {
	f := newFSM(t)
	if got, want := f.KeysByState(), map[KeyState]KeyCount{
		KeyStateEnabled: {}, KeyStateDisabled: {}, KeyStatePendingDeletion: {}, KeyStatePendingImport: {},
	}; !maps.Equal(got, want) {
		t.Fatalf("empty fsm: got %v, want %v", got, want)
	}
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		mustApply(t, f, CmdCreateKey, createKey(id, orgA))
	}
	mustApply(t, f, CmdCreateKey, createExternal("x1", orgA))
	mustApply(t, f, CmdDisableKey, ref("k2", orgA, t0))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k3", orgA, t0, t0+day))
	// A replica here of zone-0's key.
	apply(t, f, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-0", After: 0, Upto: 1, Now: t0,
		Entries: []ChangeEntry{{Seq: 1, KeyID: "r1", Key: remoteKey("r1", orgA, "zone-0", "zone-1")}}})
	if _, ok := f.Key("r1"); !ok {
		t.Fatal("replica r1 was not applied")
	}

	got := f.KeysByState()
	want := map[KeyState]KeyCount{
		KeyStateEnabled:         {Primary: 2, Replica: 1},
		KeyStateDisabled:        {Primary: 1},
		KeyStatePendingDeletion: {Primary: 1},
		KeyStatePendingImport:   {Primary: 1},
	}
	if !maps.Equal(got, want) {
		t.Errorf("KeysByState: got %v, want %v", got, want)
	}
	// The counts follow a restore, which replaces the whole state.
	if got := roundTrip(t, f).KeysByState(); !maps.Equal(got, want) {
		t.Errorf("KeysByState after snapshot and restore: got %v, want %v", got, want)
	}
}
