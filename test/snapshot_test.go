package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/snapshot"
	"github.com/keyzone/keyzone/test/clustertest"
)

func snapshotCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// backedUpMessage is an acknowledged encryption to check after a restore.
type backedUpMessage struct {
	keyID      string
	plaintext  []byte
	context    map[string]string
	ciphertext []byte
}

// TestSnapshot_SaveDestroyRestoreIntoFreshZone: a zone's snapshot, saved
// through a follower, restored through a follower into a fresh zone
// started with the same root key, brings back every key in its state and
// version and every ciphertext decrypts on every node; the restored zone
// takes writes again, and replaces what it held before the restore.
func TestSnapshot_SaveDestroyRestoreIntoFreshZone(t *testing.T) {
	t.Parallel()
	ctx := snapshotCtx(t)
	old := clustertest.New(t, 3, clustertest.Options{Zone: "zone-a"})
	cl := clientOf(t, old, old.Followers()[0])

	var want []wire.Key
	var msgs []backedUpMessage
	for i := range 6 {
		k, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "backed-up"})
		if err != nil {
			t.Fatal(err)
		}
		for v := 1; v <= 3; v++ {
			pt := []byte("message under version " + string(rune('0'+v)))
			ec := map[string]string{"tenant": k.ID[:8]}
			enc, err := cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, EncryptionContext: ec})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, backedUpMessage{k.ID, pt, ec, enc.Ciphertext})
			if v < 3 {
				if _, err := cl.RotateKey(ctx, k.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if i%3 == 1 {
			disableSettled(t, ctx, cl, k.ID)
		}
		got, err := cl.GetKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got)
	}

	// Snapshots are the operator's; an organization's admin is refused.
	var archive bytes.Buffer
	_, err := cl.SaveSnapshot(ctx, &archive, nil)
	wantAPIError(t, err, http.StatusForbidden, wire.CodeForbidden)
	archive.Reset()
	op := operatorClient(t, old, old.Followers()[0])
	var calls int
	n, err := op.SaveSnapshot(ctx, &archive, func(done, total int64) {
		calls++
		if total <= 0 || done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(archive.Len()) || n == 0 || calls == 0 {
		t.Fatalf("saved %d bytes (buffer %d), %d progress calls", n, archive.Len(), calls)
	}
	old.Shutdown()

	// The fresh zone has an organization "test" of its own (another id,
	// another token), which the restore replaces with the old zone's.
	fresh := clustertest.New(t, 3, clustertest.Options{Zone: "zone-a", REK: old.REK, Token: old.OperatorToken})
	// A client of its own: the old zone's session indexes mean nothing
	// to the fresh zone.
	freshAdmin, err := client.New(fresh.Followers()[1].Addr(), fresh.Token)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := freshAdmin.CreateKey(ctx, wire.CreateKeyRequest{Name: "made before the restore"})
	if err != nil {
		t.Fatal(err)
	}
	fop := operatorClient(t, fresh, fresh.Followers()[1])
	meta, err := fop.RestoreSnapshot(ctx, bytes.NewReader(archive.Bytes()), int64(archive.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The old zone's keys and its organization's default key.
	if meta.Keys != len(want)+1 || meta.Zone != "zone-a" || meta.RekID != old.REK.ID() {
		t.Fatalf("restore answered %+v, want %d keys of zone-a under %s", meta, len(want)+1, old.REK.ID())
	}
	// The old zone's token works on the restored zone; the fresh zone's
	// own organization and token are gone with the state they lived in.
	fc, err := client.New(fresh.Followers()[1].Addr(), old.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range fresh.Nodes {
		clustertest.WaitFor(t, 30*time.Second, node.ID+" to refuse the replaced organization's token", func() bool {
			cl, err := client.New(node.Addr(), fresh.Token)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.WhoAmI(ctx)
			apiErr, ok := errors.AsType[*client.Error](err)
			return ok && apiErr.StatusCode == http.StatusUnauthorized
		})
	}
	for _, node := range fresh.Nodes {
		nc, err := client.New(node.Addr(), old.Token)
		if err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 30*time.Second, node.ID+" to hold the restored keys", func() bool {
			for _, w := range want {
				k, err := nc.GetKey(ctx, w.ID, client.Stale())
				if err != nil || k.State != w.State || k.CurrentVersion != w.CurrentVersion || k.Revision != w.Revision {
					return false
				}
			}
			return true
		})
		if _, err := nc.GetKey(ctx, gone.ID); err == nil {
			t.Errorf("%s: key %s created before the restore survived it", node.ID, gone.ID)
		}
		for _, m := range msgs {
			dec, err := nc.Decrypt(ctx, wire.DecryptRequest{Ciphertext: m.ciphertext, EncryptionContext: m.context})
			disabled := strings.Contains(errString(err), "disabled")
			if err != nil && !disabled {
				t.Fatalf("%s: decrypt under %s: %v", node.ID, m.keyID, err)
			}
			if err == nil && !bytes.Equal(dec.Plaintext, m.plaintext) {
				t.Fatalf("%s: decrypt under %s gave another plaintext", node.ID, m.keyID)
			}
		}
	}
	// The disabled keys come back disabled; enabled again, their
	// ciphertexts decrypt too.
	for _, w := range want {
		if w.State == "disabled" {
			if _, err := fc.EnableKey(ctx, w.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, m := range msgs {
		dec, err := fc.Decrypt(ctx, wire.DecryptRequest{Ciphertext: m.ciphertext, EncryptionContext: m.context})
		if err != nil || !bytes.Equal(dec.Plaintext, m.plaintext) {
			t.Fatalf("decrypt under %s after enabling: %v", m.keyID, err)
		}
	}
	// The restored zone takes writes.
	k, err := fc.RotateKey(ctx, want[0].ID)
	if err != nil || k.CurrentVersion != 4 {
		t.Fatalf("rotate after restore: version %d, %v", k.CurrentVersion, err)
	}
	if _, err := fc.CreateKey(ctx, wire.CreateKeyRequest{Name: "after"}); err != nil {
		t.Fatal(err)
	}
}

// disableSettled disables key id. A 503 whose outcome is unknown (the
// leader changed while committing) is settled by reading the key back.
func disableSettled(t *testing.T, ctx context.Context, cl *client.Client, id string) {
	t.Helper()
	clustertest.WaitFor(t, 30*time.Second, "key "+id+" to be disabled", func() bool {
		if _, err := cl.DisableKey(ctx, id); err == nil {
			return true
		}
		k, err := cl.GetKey(ctx, id)
		return err == nil && k.State == "disabled"
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// forged is good's archive with its state changed by edit and every
// checksum recomputed, sealed under a MAC key that is not the
// deployment's: what someone without the root key can make.
func forged(t *testing.T, good []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	var state bytes.Buffer
	meta, err := snapshot.Read(bytes.NewReader(good), &state, snapshot.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	changed := edit(state.Bytes())
	sum := sha256.Sum256(changed)
	meta.StateSize, meta.StateSHA256 = int64(len(changed)), hex.EncodeToString(sum[:])
	var out bytes.Buffer
	if err := snapshot.Write(&out, meta, bytes.NewReader(changed), []byte("not the deployment's key")); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestSnapshot_RefusesBadArchives: a corrupt file, a file modified with
// its checksums recomputed, a snapshot of another deployment (another
// root key) and one of another zone are each refused with their own
// error, and the zone keeps its state.
func TestSnapshot_RefusesBadArchives(t *testing.T) {
	t.Parallel()
	ctx := snapshotCtx(t)
	z := clustertest.New(t, 3, clustertest.Options{Zone: "zone-a"})
	cl := clientOf(t, z, z.Leader())
	k, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	other := clustertest.New(t, 1, clustertest.Options{Zone: "zone-a", NoOrganization: true})
	otherZone := clustertest.New(t, 1, clustertest.Options{Zone: "zone-b", REK: z.REK, Token: z.OperatorToken, NoOrganization: true})
	save := func(c *clustertest.Cluster) []byte {
		var b bytes.Buffer
		if _, err := operatorClient(t, c, c.Nodes[0]).SaveSnapshot(ctx, &b, nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	op := operatorClient(t, z, z.Leader())
	good := save(z)

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	resummed := forged(t, good, func(state []byte) []byte {
		return bytes.Replace(state, []byte(`"name":"kept"`), []byte(`"name":"evil"`), 1)
	})
	cases := []struct {
		name   string
		data   []byte
		status int
		code   string
		msg    string
	}{
		{"garbage", []byte("not a snapshot"), http.StatusBadRequest, "invalid_snapshot", "not gzip"},
		{"truncated", good[:len(good)-40], http.StatusBadRequest, "invalid_snapshot", "invalid snapshot"},
		{"byte flipped", flipped, http.StatusBadRequest, "invalid_snapshot", "invalid snapshot"},
		{"modified, checksums recomputed", resummed, http.StatusBadRequest, "invalid_snapshot", "authentication failed"},
		{"another root key", save(other), http.StatusConflict, "snapshot_mismatch", "root key"},
		{"another zone", save(otherZone), http.StatusConflict, "snapshot_mismatch", `zone "zone-b"`},
	}
	for _, tc := range cases {
		var err error
		clustertest.WaitFor(t, 30*time.Second, tc.name+": an answer other than 503", func() bool {
			// A zone without a leader for a moment (a loaded machine)
			// answers 503: the refusal is asked for again.
			_, err = op.RestoreSnapshot(ctx, bytes.NewReader(tc.data), int64(len(tc.data)), nil)
			apiErr, ok := errors.AsType[*client.Error](err)
			return !ok || apiErr.StatusCode != http.StatusServiceUnavailable
		})
		wantAPIError(t, err, tc.status, tc.code)
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.msg)
		}
	}
	got, err := cl.GetKey(ctx, k.ID)
	if err != nil || got.Name != "kept" {
		t.Fatalf("after the refusals: %+v, %v", got, err)
	}
	// Without the operator token nothing is saved or restored: a wrong
	// token is unauthenticated, an organization's admin forbidden.
	anon, _ := client.New(z.Nodes[0].Addr(), "wrong")
	_, err = anon.SaveSnapshot(ctx, io.Discard, nil)
	wantAPIError(t, err, http.StatusUnauthorized, "unauthorized")
	_, err = anon.RestoreSnapshot(ctx, bytes.NewReader(good), int64(len(good)), nil)
	wantAPIError(t, err, http.StatusUnauthorized, "unauthorized")
	_, err = cl.RestoreSnapshot(ctx, bytes.NewReader(good), int64(len(good)), nil)
	wantAPIError(t, err, http.StatusForbidden, wire.CodeForbidden)
}

// TestSnapshot_RestoredZoneStillReplicates: zone-a is restored from a
// snapshot older than changes zone-b already applied from it; its change
// log moves above them, so zone-b takes the restored state and every
// later change, and the zones converge.
func TestSnapshot_RestoredZoneStillReplicates(t *testing.T) {
	t.Parallel()
	ctx := snapshotCtx(t)
	zones := clustertest.NewZones(t, 1, []string{"zone-a", "zone-b"}, clustertest.Options{})
	a := zones[0]
	ca := zoneClient(t, a, 0)
	k, err := ca.CreateKey(ctx, wire.CreateKeyRequest{Name: "global", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	op := operatorClient(t, a, a.Nodes[0])
	var archive bytes.Buffer
	if _, err := op.SaveSnapshot(ctx, &archive, nil); err != nil {
		t.Fatal(err)
	}
	// Changes zone-b applies after the snapshot: they push its applied
	// sequence of zone-a's log past the snapshot's.
	later, err := ca.CreateKey(ctx, wire.CreateKeyRequest{Name: "later", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := ca.UpdateKey(ctx, later.ID, wire.UpdateKeyRequest{Description: ptr("changed")}); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, zones, a, later.ID)

	if _, err := op.RestoreSnapshot(ctx, bytes.NewReader(archive.Bytes()), int64(archive.Len()), nil); err != nil {
		t.Fatal(err)
	}
	// A change after the restore reaches zone-b.
	if _, err := ca.RotateKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 30*time.Second, "the rotation after the restore to reach zone-b", func() bool {
		got, ok := zones[1].Nodes[0].Server().FSM().Key(k.ID)
		return ok && len(got.Versions) == 2
	})
	waitConverged(t, zones, a, k.ID)
}
