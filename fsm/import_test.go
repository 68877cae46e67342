package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
)

func importParams(tokenID string, expires int64) ImportParams {
	h := sha256.Sum256([]byte("token-" + tokenID))
	return ImportParams{
		TokenID:           tokenID,
		TokenHash:         h[:],
		PublicKey:         bytes.Repeat([]byte{7}, 32),
		WrappedPrivateKey: []byte("wrapped-private-" + tokenID),
		RekID:             "rek-1",
		ExpiresAt:         expires,
	}
}

func setParams(id, org, tokenID string, now, expires int64) SetImportParamsV1 {
	return SetImportParamsV1{KeyRefV1: ref(id, org, now), Params: importParams(tokenID, expires)}
}

func importMaterial(id, org, tokenID string, n uint32, now int64) ImportKeyMaterialV1 {
	return ImportKeyMaterialV1{KeyRefV1: ref(id, org, now), TokenID: tokenID, NewVersion: version(id, n, now)}
}

// importCommandCases are the cases of commandCases for the BYOK commands.
func importCommandCases(setup func(...step) []step) []commandCase {
	return []commandCase{
		{
			name:  "SetImportParams",
			setup: setup(step{CmdCreateKey, createExternal("k1", orgA)}),
			cmd:   step{CmdSetImportParams, setParams("k1", orgA, "t1", t0+hour, t0+day)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				if res.Err != nil || res.Key == nil || res.Key.Revision == index {
					t.Fatalf("Result = %+v, want the unchanged key", res)
				}
				p, ok := f.ImportParams("k1")
				if !ok || p.KeyID != "k1" || p.TokenID != "t1" || p.CreatedAt != t0+hour || p.UsedAt != 0 {
					t.Errorf("ImportParams = %+v, %v", p, ok)
				}
			},
		},
		{
			name: "ImportKeyMaterial",
			setup: setup(
				step{CmdCreateKey, createExternal("k1", orgA)},
				step{CmdSetImportParams, setParams("k1", orgA, "t1", t0+hour, t0+day)},
			),
			cmd: step{CmdImportKeyMaterial, importMaterial("k1", orgA, "t1", 1, t0+2*hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				if k.CurrentVersion != 1 || len(k.Versions) != 1 {
					t.Errorf("versions = %+v current %d, want version 1 current", k.Versions, k.CurrentVersion)
				}
				p, _ := f.ImportParams("k1")
				if p.UsedAt != t0+2*hour || p.WrappedPrivateKey != nil {
					t.Errorf("import parameters after use = %+v, want used and the private key erased", p)
				}
			},
		},
	}
}

// TestFSM_Import walks a key of origin external through imports and
// every refusal.
func TestFSM_Import(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, createExternal("ext", orgA))
	mustApply(t, f, CmdCreateKey, createKey("own", orgA))

	refused := func(what string, typ CommandType, payload any, want error) {
		t.Helper()
		before := stateBytes(t, f)
		res := apply(t, f, typ, payload)
		if !errors.Is(res.Err, want) {
			t.Errorf("%s: Err = %v, want %v", what, res.Err, want)
		}
		if stateBytes(t, f) != before {
			t.Errorf("%s: the state changed", what)
		}
	}
	refusedTransition := func(what string, typ CommandType, payload any) {
		t.Helper()
		res := apply(t, f, typ, payload)
		var te *TransitionError
		if !errors.As(res.Err, &te) || te.Op != OpImport {
			t.Errorf("%s: Err = %v, want a TransitionError of op import", what, res.Err)
		}
	}

	refused("import without parameters", CmdImportKeyMaterial, importMaterial("ext", orgA, "t1", 1, t0), ErrImportTokenInvalid)
	refused("parameters of a keyzone key", CmdSetImportParams, setParams("own", orgA, "t1", t0, t0+day), ErrNotExternal)
	refused("raw import into a keyzone key", CmdImportKeyMaterial, importMaterial("own", orgA, "", 2, t0), ErrNotExternal)
	refused("parameters of another organization's key", CmdSetImportParams, setParams("ext", orgB, "t1", t0, t0+day), ErrKeyNotFound)
	refused("parameters already expired", CmdSetImportParams, setParams("ext", orgA, "t1", t0, t0), ErrInvalidCommand)

	mustApply(t, f, CmdSetImportParams, setParams("ext", orgA, "t1", t0, t0+day))
	refused("another token", CmdImportKeyMaterial, importMaterial("ext", orgA, "t0", 1, t0+hour), ErrImportTokenInvalid)
	refused("expired token", CmdImportKeyMaterial, importMaterial("ext", orgA, "t1", 1, t0+day), ErrImportTokenExpired)
	refused("version 2 first", CmdImportKeyMaterial, importMaterial("ext", orgA, "t1", 2, t0+hour), ErrVersionConflict)

	k := mustApply(t, f, CmdImportKeyMaterial, importMaterial("ext", orgA, "t1", 1, t0+hour))
	if k.State != KeyStateEnabled || k.CurrentVersion != 1 {
		t.Fatalf("after the first import: state %s current %d, want enabled 1", k.State, k.CurrentVersion)
	}
	refused("reused token", CmdImportKeyMaterial, importMaterial("ext", orgA, "t1", 2, t0+hour), ErrImportTokenUsed)

	// New parameters replace the used ones; a second import rotates.
	mustApply(t, f, CmdSetImportParams, setParams("ext", orgA, "t2", t0+hour, t0+day))
	k = mustApply(t, f, CmdImportKeyMaterial, importMaterial("ext", orgA, "t2", 2, t0+2*hour))
	if k.CurrentVersion != 2 || len(k.Versions) != 2 {
		t.Fatalf("after the second import: current %d of %d versions, want 2 of 2", k.CurrentVersion, len(k.Versions))
	}
	// A raw import (no token) is the proposer's decision.
	k = mustApply(t, f, CmdImportKeyMaterial, importMaterial("ext", orgA, "", 3, t0+2*hour))
	if k.CurrentVersion != 3 {
		t.Fatalf("after a raw import: current %d, want 3", k.CurrentVersion)
	}

	mustApply(t, f, CmdDisableKey, ref("ext", orgA, t0+3*hour))
	refusedTransition("parameters of a disabled key", CmdSetImportParams, setParams("ext", orgA, "t3", t0+3*hour, t0+day))
	mustApply(t, f, CmdEnableKey, ref("ext", orgA, t0+3*hour))
	mustApply(t, f, CmdSetImportParams, setParams("ext", orgA, "t3", t0+3*hour, t0+day))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("ext", orgA, t0+3*hour, t0+4*hour))
	refusedTransition("import into a key pending deletion", CmdImportKeyMaterial, importMaterial("ext", orgA, "t3", 4, t0+3*hour))

	// The purge drops the import parameters with the key.
	mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "ext", Now: t0 + 4*hour})
	if p, ok := f.ImportParams("ext"); ok {
		t.Errorf("import parameters of a purged key kept: %+v", p)
	}
}

// TestFSM_Import_MultiZone checks that a later import into a multi-zone
// primary is two-phase like a rotation, and that the version reaches the
// change log.
func TestFSM_Import_MultiZone(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withReplicas(createExternal("ext", orgA), "zone-2"))
	mustApply(t, f, CmdSetImportParams, setParams("ext", orgA, "t1", t0, t0+day))
	k := mustApply(t, f, CmdImportKeyMaterial, importMaterial("ext", orgA, "t1", 1, t0))
	if k.CurrentVersion != 1 || k.PendingVersion != 0 {
		t.Fatalf("first import: current %d pending %d, want 1 and none", k.CurrentVersion, k.PendingVersion)
	}
	mustApply(t, f, CmdSetImportParams, setParams("ext", orgA, "t2", t0, t0+day))
	k = mustApply(t, f, CmdImportKeyMaterial, importMaterial("ext", orgA, "t2", 2, t0))
	if k.CurrentVersion != 1 || k.PendingVersion != 2 {
		t.Fatalf("second import: current %d pending %d, want 1 and 2", k.CurrentVersion, k.PendingVersion)
	}
	entries, _ := f.ChangesAfter(0, 0)
	if len(entries) != 1 || entries[0].Key == nil || len(entries[0].Key.Versions) != 2 {
		t.Fatalf("change log = %+v, want the key with both versions", entries)
	}
	mustApply(t, f, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: entries[0].Seq, Now: t0})
	if k, _ := f.Key("ext"); k.CurrentVersion != 2 {
		t.Errorf("after the replica's ack: current %d, want 2", k.CurrentVersion)
	}
	mustApply(t, f, CmdSetImportParams, setParams("ext", orgA, "t3", t0, t0+day))
	if p, ok := f.ImportParams("ext"); !ok || p.TokenID != "t3" {
		t.Errorf("import parameters = %+v, want t3", p)
	}
}

// TestFSM_Import_ErrorsSurviveForwarding checks that a follower gets the
// leader's import refusals back as the same sentinels.
func TestFSM_Import_ErrorsSurviveForwarding(t *testing.T) {
	for _, want := range []error{ErrNotExternal, ErrImportTokenInvalid, ErrImportTokenExpired, ErrImportTokenUsed} {
		b, err := Result{Err: fmt.Errorf("import into key k: %w", want)}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var got Result
		if err := got.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(got.Err, want) {
			t.Errorf("forwarded %v came back as %v", want, got.Err)
		}
	}
}
