package test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

func TestZone_ServiceSmoke(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := c.Followers()
	k, err := f[0].Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: c.Org.ID, Name: "smoke"})
	if err != nil {
		t.Fatalf("create on follower: %v", err)
	}
	enc, err := f[1].Server().Keys().Encrypt(ctx, keys.EncryptParams{Organization: c.Org.ID, KeyID: k.ID, Plaintext: []byte("hello")})
	if err != nil {
		t.Fatalf("encrypt on other follower: %v", err)
	}
	dec, err := c.Leader().Server().Keys().Decrypt(ctx, keys.DecryptParams{Organization: c.Org.ID, Ciphertext: enc.Ciphertext})
	if err != nil {
		t.Fatalf("decrypt on leader: %v", err)
	}
	if !bytes.Equal(dec.Plaintext, []byte("hello")) {
		t.Fatalf("got %q, want hello", dec.Plaintext)
	}
}
