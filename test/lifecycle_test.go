package test

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/test/clustertest"
)

// session is shared by every client of a test, as one application
// talking to several nodes: it reads its own writes on any of them.
var sessions sync.Map // *testing.T -> *client.Session

func sessionOf(t *testing.T) *client.Session {
	s, _ := sessions.LoadOrStore(t, client.NewSession())
	return s.(*client.Session)
}

func clients(t *testing.T, c *clustertest.Cluster) []*client.Client {
	t.Helper()
	var out []*client.Client
	for _, n := range c.Nodes {
		cl, err := client.New(n.Addr(), c.Token, client.WithSession(sessionOf(t)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cl)
	}
	return out
}

// clientOf returns a client of node n of the cluster.
func clientOf(t *testing.T, c *clustertest.Cluster, n *clustertest.Node) *client.Client {
	t.Helper()
	cl, err := client.New(n.Addr(), c.Token, client.WithSession(sessionOf(t)))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("got error %v, want API error %d %s", err, status, code)
	}
	if apiErr.StatusCode != status || apiErr.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", apiErr.StatusCode, apiErr.Code, apiErr.Message, status, code)
	}
}

func TestZone_KeyLifecycleOverHTTP(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	followers := c.Followers()
	onFollower := clientOf(t, c, followers[0])
	onOther := clientOf(t, c, followers[1])
	onLeader := clientOf(t, c, c.Leader())

	// Create on a follower: forwarded to the leader, visible everywhere.
	k, err := onFollower.CreateKey(ctx, wire.CreateKeyRequest{Name: "orders", Tags: []string{"team:pay"}})
	if err != nil {
		t.Fatalf("create on follower: %v", err)
	}
	if k.State != "enabled" || k.CurrentVersion != 1 || k.Organization != c.Org.ID || k.PrimaryZone != "zone-a" {
		t.Fatalf("got key %+v, want enabled version 1 of organization %s in zone-a", k, c.Org.ID)
	}
	ctxMap := map[string]string{"order": "42"}
	plaintext := []byte("card 4111 1111 1111 1111")

	// Encrypt on one node, decrypt on another (the key id comes from the ciphertext).
	enc1, err := onOther.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: plaintext, EncryptionContext: ctxMap})
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	dec, err := onLeader.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc1.Ciphertext, EncryptionContext: ctxMap})
	if err != nil {
		t.Fatalf("decrypt on leader: %v", err)
	}
	if !bytes.Equal(dec.Plaintext, plaintext) || dec.KeyID != k.ID || dec.KeyVersion != 1 {
		t.Fatalf("got %q from %s v%d, want the plaintext from %s v1", dec.Plaintext, dec.KeyID, dec.KeyVersion, k.ID)
	}
	// The wrong context fails like any other bad ciphertext.
	_, err = onFollower.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc1.Ciphertext, EncryptionContext: map[string]string{"order": "43"}})
	wantAPIError(t, err, http.StatusUnprocessableEntity, "decrypt_failed")

	// Rotate: new ciphertexts carry version 2, old ones still decrypt.
	rotated, err := onOther.RotateKey(ctx, k.ID)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rotated.CurrentVersion != 2 {
		t.Fatalf("got current version %d after rotate, want 2", rotated.CurrentVersion)
	}
	enc2, err := onFollower.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: plaintext, EncryptionContext: ctxMap})
	if err != nil {
		t.Fatalf("encrypt after rotate: %v", err)
	}
	if enc2.KeyVersion != 2 {
		t.Fatalf("got ciphertext of version %d after rotate, want 2", enc2.KeyVersion)
	}
	for _, ct := range [][]byte{enc1.Ciphertext, enc2.Ciphertext} {
		if _, err := onOther.Decrypt(ctx, wire.DecryptRequest{Ciphertext: ct, EncryptionContext: ctxMap}); err != nil {
			t.Fatalf("decrypt after rotate: %v", err)
		}
	}
	// Re-encrypt the old ciphertext to the newest version.
	re, err := onLeader.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: enc1.Ciphertext, EncryptionContext: ctxMap, DestinationEncryptionContext: ctxMap})
	if err != nil {
		t.Fatalf("re-encrypt: %v", err)
	}
	if re.KeyVersion != 2 {
		t.Fatalf("re-encrypt gave version %d, want 2", re.KeyVersion)
	}

	// Disable: crypto refused; enable restores it.
	if _, err := onFollower.DisableKey(ctx, k.ID); err != nil {
		t.Fatalf("disable: %v", err)
	}
	_, err = onOther.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: plaintext})
	wantAPIError(t, err, http.StatusConflict, "key_disabled")
	_, err = onOther.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc2.Ciphertext, EncryptionContext: ctxMap})
	wantAPIError(t, err, http.StatusConflict, "key_disabled")
	_, err = onOther.RotateKey(ctx, k.ID)
	wantAPIError(t, err, http.StatusConflict, "invalid_state")
	if _, err := onLeader.EnableKey(ctx, k.ID); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if _, err := onOther.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: plaintext}); err != nil {
		t.Fatalf("encrypt after enable: %v", err)
	}

	// A protected key refuses deletion.
	if _, err := onLeader.ProtectKey(ctx, k.ID); err != nil {
		t.Fatalf("protect: %v", err)
	}
	_, err = onFollower.ScheduleDeletion(ctx, k.ID, 2*time.Second)
	wantAPIError(t, err, http.StatusConflict, "key_protected")
	if _, err := onLeader.UnprotectKey(ctx, k.ID); err != nil {
		t.Fatalf("unprotect: %v", err)
	}

	// Schedule deletion, cancel (back to disabled), schedule again, purge.
	pending, err := onFollower.ScheduleDeletion(ctx, k.ID, time.Hour)
	if err != nil {
		t.Fatalf("schedule deletion: %v", err)
	}
	if pending.State != "pending_deletion" || pending.DeletionAt.IsZero() {
		t.Fatalf("got state %s deletion_at %v, want pending_deletion with a time", pending.State, pending.DeletionAt)
	}
	_, err = onOther.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: plaintext})
	wantAPIError(t, err, http.StatusConflict, "key_disabled")
	cancelled, err := onOther.CancelDeletion(ctx, k.ID)
	if err != nil {
		t.Fatalf("cancel deletion: %v", err)
	}
	if cancelled.State != "disabled" {
		t.Fatalf("got state %s after cancel, want disabled", cancelled.State)
	}
	if _, err := onLeader.ScheduleDeletion(ctx, k.ID, time.Second); err != nil {
		t.Fatalf("schedule deletion again: %v", err)
	}
	// The leader purges on its own schedule; a consistent read on each
	// node waits until that node has applied the purge too.
	clustertest.WaitFor(t, 20*time.Second, "the purge", func() bool {
		for _, cl := range clients(t, c) {
			_, err := cl.GetKey(ctx, k.ID)
			var apiErr *client.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
				return false
			}
		}
		return true
	})
	// Purged for good: every node refuses its ciphertexts, and the id is not reused.
	for _, cl := range clients(t, c) {
		_, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc1.Ciphertext, EncryptionContext: ctxMap})
		wantAPIError(t, err, http.StatusUnprocessableEntity, "decrypt_failed")
		_, err = cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: plaintext})
		wantAPIError(t, err, http.StatusNotFound, "key_not_found")
	}
}

func TestZone_SafeRetries(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	cls := clients(t, c)

	// The same Idempotency-Key on two nodes creates one key.
	a, err := cls[0].CreateKey(ctx, wire.CreateKeyRequest{Name: "once"}, client.IdempotencyKey("create-once-1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := cls[1].CreateKey(ctx, wire.CreateKeyRequest{Name: "once"}, client.IdempotencyKey("create-once-1"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Fatalf("a repeated create made a second key: %s and %s", a.ID, b.ID)
	}
	list, err := cls[2].ListKeys(ctx, client.ListKeysOptions{Name: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Keys) != 1 {
		t.Fatalf("got %d keys named once, want 1", len(list.Keys))
	}

	// The same Idempotency-Key on rotate rotates once.
	for i := 0; i < 3; i++ {
		k, err := cls[i].RotateKey(ctx, a.ID, client.IdempotencyKey("rotate-once-1"))
		if err != nil {
			t.Fatal(err)
		}
		if k.CurrentVersion != 2 {
			t.Fatalf("repeat %d: got version %d, want 2", i, k.CurrentVersion)
		}
	}

	// If-Match: a stale revision is refused, the current one accepted.
	cur, err := cls[1].GetKey(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cls[2].DisableKey(ctx, a.ID, client.IfMatch(cur.Revision-1))
	wantAPIError(t, err, http.StatusPreconditionFailed, "revision_mismatch")
	d, err := cls[2].DisableKey(ctx, a.ID, client.IfMatch(cur.Revision))
	if err != nil {
		t.Fatalf("disable with the current revision: %v", err)
	}
	if d.Revision <= cur.Revision {
		t.Fatalf("revision did not move: %d -> %d", cur.Revision, d.Revision)
	}
}

// TestZone_FollowerCatchesUp creates and rotates keys through the leader
// and uses them at once on followers: a follower that has not applied the
// change yet waits for it instead of answering 404.
func TestZone_FollowerCatchesUp(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	leader := clientOf(t, c, c.Leader())
	followers := c.Followers()
	for i := 0; i < 30; i++ {
		k, err := leader.CreateKey(ctx, wire.CreateKeyRequest{Name: "fresh"})
		if err != nil {
			t.Fatal(err)
		}
		f := clientOf(t, c, followers[i%2])
		if _, err := f.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")}); err != nil {
			t.Fatalf("encrypt on a follower right after create: %v", err)
		}
		if _, err := leader.RotateKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		enc, err := leader.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("y")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext}); err != nil {
			t.Fatalf("decrypt of a new version on a follower: %v", err)
		}
	}
}

// TestZone_AutomaticRotation sets a short rotation period and watches the
// leader rotate on schedule; a manual rotation does not move the schedule.
func TestZone_AutomaticRotation(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	cl := clientOf(t, c, c.Followers()[0])
	k, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "auto", RotationPolicy: wire.RotationPolicySpec{RotationPeriod: "2s"}})
	if err != nil {
		t.Fatal(err)
	}
	next := k.RotationPolicy.NextRotationAt
	if next.IsZero() {
		t.Fatalf("no next_rotation_at on a key with a rotation period: %+v", k.RotationPolicy)
	}
	manual, err := cl.RotateKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !manual.RotationPolicy.NextRotationAt.Equal(next) {
		t.Fatalf("manual rotation moved next_rotation_at from %v to %v", next, manual.RotationPolicy.NextRotationAt)
	}
	clustertest.WaitFor(t, 20*time.Second, "a scheduled rotation", func() bool {
		got, err := cl.GetKey(ctx, k.ID)
		return err == nil && got.CurrentVersion >= 3 && got.RotationPolicy.NextRotationAt.After(next)
	})
	// Turning the policy off stops it.
	off := ""
	if _, err := cl.UpdateKey(ctx, k.ID, wire.UpdateKeyRequest{RotationPolicy: &wire.RotationPolicySpec{RotationPeriod: off}}); err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RotationPolicy.NextRotationAt.IsZero() {
		t.Fatalf("next_rotation_at still set after turning rotation off: %v", got.RotationPolicy.NextRotationAt)
	}
}
