package test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/core/registry"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/client/tinkkms"
	"github.com/keyzone/keyzone/test/clustertest"
)

// kekVersion returns the Keyzone key version that wrapped the DEK of a
// Tink KMS envelope ciphertext: 4-byte DEK length, then Keyzone's
// ciphertext (format, key id, version, ...).
func kekVersion(t *testing.T, ct []byte) uint32 {
	t.Helper()
	if len(ct) < 4+1+16+4 {
		t.Fatalf("envelope ciphertext of %d bytes", len(ct))
	}
	dek := ct[4 : 4+binary.BigEndian.Uint32(ct[:4])]
	return binary.BigEndian.Uint32(dek[1+16:])
}

// TestTink_EnvelopeAcrossZones runs Tink's KMS envelope AEAD against a
// multi-zone key through registry.KMSClient: round trip, wrong associated
// data, a decryption in the replica zone after a rotation.
func TestTink_EnvelopeAcrossZones(t *testing.T) {
	zones := clustertest.NewZones(t, 1, []string{"zone-a", "zone-b"}, clustertest.Options{})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 90*time.Second)
	sess := client.NewSession()
	admin := sessionClient(t, a, 0, sess)
	k, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "tink", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	uri := tinkkms.Prefix + k.ID

	// zone-a's client through Tink's registry; zone-b's bound to the key.
	kmsA, err := tinkkms.NewClient("keyzone://", tinkkms.WithAddress(a.Nodes[0].Addr()), tinkkms.WithToken(a.Token), tinkkms.WithSession(sess))
	if err != nil {
		t.Fatal(err)
	}
	registry.RegisterKMSClient(kmsA)
	t.Cleanup(registry.ClearKMSClients)
	var kmsB registry.KMSClient
	kmsB, err = tinkkms.NewClient(uri, tinkkms.WithAddress(b.Nodes[0].Addr()), tinkkms.WithToken(b.Token))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kms  registry.KMSClient
		uri  string
		want bool
	}{
		{kmsA, uri, true}, {kmsA, "KEYZONE://" + k.ID, true}, {kmsA, "aws-kms://arn:aws:kms:x", false},
		{kmsA, "keyzone://", false}, {kmsB, uri, true}, {kmsB, "keyzone://other", false},
	} {
		if got := c.kms.Supported(c.uri); got != c.want {
			t.Errorf("Supported(%q) = %v, want %v", c.uri, got, c.want)
		}
	}
	if _, err := tinkkms.NewClient("aws-kms://", tinkkms.WithAddress("http://x"), tinkkms.WithToken("t")); err == nil {
		t.Error("NewClient accepted a prefix of another scheme")
	}

	fromRegistry, err := registry.GetKMSClient(uri)
	if err != nil {
		t.Fatal(err)
	}
	kekA, err := fromRegistry.GetAEAD(uri)
	if err != nil {
		t.Fatal(err)
	}
	kekB, err := kmsB.GetAEAD(uri)
	if err != nil {
		t.Fatal(err)
	}
	envA := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kekA)
	envB := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kekB)

	pt, ad := []byte("order 42: 3 widgets"), []byte("orders/42")
	ct1, err := envA.Encrypt(pt, ad)
	if err != nil {
		t.Fatalf("envelope encrypt: %v", err)
	}
	if got, err := envA.Decrypt(ct1, ad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("envelope round trip: %q, %v", got, err)
	}
	if _, err := envA.Decrypt(ct1, []byte("orders/43")); err == nil {
		t.Error("envelope decrypt with the wrong associated data succeeded")
	}
	// The KMS AEAD itself binds its associated data too.
	wrapped, err := kekA.Encrypt([]byte("a DEK"), []byte("ctx-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kekA.Decrypt(wrapped, []byte("ctx-2")); err == nil {
		t.Error("KMS AEAD decrypt with the wrong associated data succeeded")
	}
	if got, err := kekB.Decrypt(wrapped, []byte("ctx-1")); err != nil || string(got) != "a DEK" {
		t.Errorf("KMS AEAD decrypt in zone-b: %q, %v", got, err)
	}

	// Rotate in the primary zone: once version 2 encrypts, a new envelope
	// uses it and zone-b decrypts it, along with the older one.
	if _, err := admin.RotateKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 30*time.Second, "version 2 to encrypt in zone-a", func() bool {
		got, ok := a.Nodes[0].Server().FSM().Key(k.ID)
		return ok && got.CurrentVersion == 2
	})
	ct2, err := envA.Encrypt(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if v1, v2 := kekVersion(t, ct1), kekVersion(t, ct2); v1 != 1 || v2 != 2 {
		t.Fatalf("DEKs wrapped under versions %d and %d, want 1 and 2", v1, v2)
	}
	for i, ct := range [][]byte{ct1, ct2} {
		if got, err := envB.Decrypt(ct, ad); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("zone-b decrypt of envelope %d: %q, %v", i+1, got, err)
		}
	}
	if _, err := envB.Decrypt(ct2, nil); err == nil {
		t.Error("zone-b decrypt without the associated data succeeded")
	}

	// An imported key serves Tink the same way.
	ext, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "tink-byok", Origin: "external"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ImportMaterial(ctx, ext.ID, bytes.Repeat([]byte{5}, 32)); err != nil {
		t.Fatal(err)
	}
	kekExt, err := kmsA.GetAEAD(tinkkms.Prefix + ext.ID)
	if err != nil {
		t.Fatal(err)
	}
	envExt := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kekExt)
	ctExt, err := envExt.Encrypt(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := envExt.Decrypt(ctExt, ad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("envelope round trip under an imported key: %q, %v", got, err)
	}

	// A ciphertext of another key is refused by this key's AEAD.
	other, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	kekOther, err := kmsA.GetAEAD(tinkkms.Prefix + other.ID)
	if err != nil {
		t.Fatal(err)
	}
	otherCT, err := kekOther.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kekA.Decrypt(otherCT, nil); err == nil {
		t.Error("a ciphertext of another key decrypted under this key's AEAD")
	}
}
