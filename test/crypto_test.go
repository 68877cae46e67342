package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/test/clustertest"
)

// cryptoClients returns one SDK client per node, sharing one session so
// that a change made through any of them is seen by the others.
func cryptoClients(t *testing.T, c *clustertest.Cluster) []*client.Client {
	t.Helper()
	s := client.NewSession()
	out := make([]*client.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		cl, err := client.New(n.Addr(), c.Token, client.WithSession(s))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = cl
	}
	return out
}

// isDecryptFailedErr reports whether err is the API's one decrypt failure.
func isDecryptFailedErr(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && e.StatusCode == http.StatusUnprocessableEntity && e.Code == wire.CodeDecryptFailed
}

// rawDecryptOn posts a hand-written decrypt body to a node, so that the
// order of the encryption context's keys on the wire is the test's.
func rawDecryptOn(t *testing.T, ctx context.Context, c *clustertest.Cluster, n *clustertest.Node, body string) (int, wire.DecryptResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.Addr()+"/v1/decrypt", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out wire.DecryptResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, out
}

// TestCrypto_ContextBinding: a ciphertext opens only with exactly the
// context it was made with, on every node; the order of a map's entries
// does not matter; a map and raw associated data never stand in for each
// other.
func TestCrypto_ContextBinding(t *testing.T) {
	t.Parallel()
	c, logs := newLoggedZone(t)
	ctx := testCtx(t, 60*time.Second)
	cls := cryptoClients(t, c)
	k, err := cls[0].CreateKey(ctx, wire.CreateKeyRequest{Name: "ctx"})
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("bound to its context")
	ec := map[string]string{"tenant": "acme", "table": "invoices", "row": "42", "é": "ü", "": "empty key"}
	enc, err := cls[1].Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	ct := base64.StdEncoding.EncodeToString(enc.Ciphertext)

	// The same map, its keys in several orders on the wire.
	orders := []string{
		`{"tenant":"acme","table":"invoices","row":"42","é":"ü","":"empty key"}`,
		`{"":"empty key","é":"ü","row":"42","table":"invoices","tenant":"acme"}`,
		`{"row":"42","":"empty key","tenant":"acme","é":"ü","table":"invoices"}`,
		`{"row":"42","":"empty key","tenant":"acme","\u00e9":"\u00fc","table":"invoices"}`,
	}
	for i, n := range c.Nodes {
		for j, m := range orders {
			status, dec := rawDecryptOn(t, ctx, c, n, `{"ciphertext":"`+ct+`","encryption_context":`+m+`}`)
			if status != http.StatusOK || !bytes.Equal(dec.Plaintext, pt) {
				t.Errorf("node %d, order %d: got %d %q", i, j, status, dec.Plaintext)
			}
		}
	}

	// Any change fails, the same way, on every node.
	changed := map[string]map[string]string{
		"value changed":        ctxWith(ec, "row", "43"),
		"key renamed":          ctxWithout(ctxWith(ec, "Row", "42"), "row"),
		"entry added":          ctxWith(ec, "extra", ""),
		"entry removed":        ctxWithout(ec, "table"),
		"empty key removed":    ctxWithout(ec, ""),
		"value emptied":        ctxWith(ec, "tenant", ""),
		"boundary moved":       ctxWithout(ctxWith(ec, "tenan", "tacme"), "tenant"),
		"decomposed é":         ctxWithout(ctxWith(ec, "e\u0301", "ü"), "é"),
		"trailing space":       ctxWith(ec, "table", "invoices "),
		"none at all":          nil,
		"only one entry right": {"tenant": "acme"},
	}
	for name, m := range changed {
		for i, cl := range cls {
			_, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: m})
			if !isDecryptFailedErr(err) {
				t.Errorf("%s, node %d: got %v, want 422 decrypt_failed", name, i, err)
			}
		}
	}

	// Raw associated data and a map are different kinds of context, even
	// when their bytes could be confused.
	ad := []byte("tenant=acme")
	encAD, err := cls[2].Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, AssociatedData: ad})
	if err != nil {
		t.Fatal(err)
	}
	encMap, err := cls[2].Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, EncryptionContext: map[string]string{"tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, cl := range cls {
		for name, req := range map[string]wire.DecryptRequest{
			"ad ciphertext with a map":          {Ciphertext: encAD.Ciphertext, EncryptionContext: map[string]string{"tenant": "acme"}},
			"ad ciphertext with the map as key": {Ciphertext: encAD.Ciphertext, EncryptionContext: map[string]string{"tenant=acme": ""}},
			"ad ciphertext without context":     {Ciphertext: encAD.Ciphertext},
			"ad ciphertext with other ad":       {Ciphertext: encAD.Ciphertext, AssociatedData: []byte("tenant=acme ")},
			"map ciphertext with ad":            {Ciphertext: encMap.Ciphertext, AssociatedData: ad},
			"map ciphertext with its JSON":      {Ciphertext: encMap.Ciphertext, AssociatedData: []byte(`{"tenant":"acme"}`)},
			"map ciphertext without context":    {Ciphertext: encMap.Ciphertext},
		} {
			if _, err := cl.Decrypt(ctx, req); !isDecryptFailedErr(err) {
				t.Errorf("%s, node %d: got %v, want 422 decrypt_failed", name, i, err)
			}
		}
		for name, req := range map[string]wire.DecryptRequest{
			"ad": {Ciphertext: encAD.Ciphertext, AssociatedData: ad}, "map": {Ciphertext: encMap.Ciphertext, EncryptionContext: map[string]string{"tenant": "acme"}},
		} {
			if dec, err := cl.Decrypt(ctx, req); err != nil || !bytes.Equal(dec.Plaintext, pt) {
				t.Errorf("%s with its own context, node %d: %q, %v", name, i, dec.Plaintext, err)
			}
		}
	}
	// An empty map and no context are the same (JSON clients can't tell
	// them apart).
	encNone, err := cls[0].Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt})
	if err != nil {
		t.Fatal(err)
	}
	status, dec := rawDecryptOn(t, ctx, c, c.Nodes[1], `{"ciphertext":"`+base64.StdEncoding.EncodeToString(encNone.Ciphertext)+`","encryption_context":{}}`)
	if status != http.StatusOK || !bytes.Equal(dec.Plaintext, pt) {
		t.Errorf("no context, decrypted with {}: got %d", status)
	}
	if lines := apiErrorLines(logs); len(lines) > 0 {
		t.Errorf("the API logged at Error level:\n%s", strings.Join(lines, "\n"))
	}
}

func ctxWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func ctxWithout(m map[string]string, k string) map[string]string {
	out := ctxWith(m, k, "")
	delete(out, k)
	return out
}

// TestCrypto_VersionsAcrossNodes encrypts under versions 1, 2 and 3 on
// different nodes and checks that every ciphertext decrypts on every
// node, that re-encrypting an old one on any node gives the newest
// version, and that data keys and 64 KiB payloads round-trip between nodes.
func TestCrypto_VersionsAcrossNodes(t *testing.T) {
	t.Parallel()
	c, logs := newLoggedZone(t)
	ctx := testCtx(t, 60*time.Second)
	cls := cryptoClients(t, c)
	k, err := cls[0].CreateKey(ctx, wire.CreateKeyRequest{Name: "versions"})
	if err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"app": "billing"}
	type sealed struct {
		version uint32
		pt, ct  []byte
	}
	var all []sealed
	for v := uint32(1); v <= 3; v++ {
		if v > 1 {
			r, err := cls[int(v)%3].RotateKey(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.CurrentVersion != v {
				t.Fatalf("rotation gave version %d, want %d", r.CurrentVersion, v)
			}
		}
		// Encrypt on every node right after the rotation: the session
		// makes each one use the new version.
		for i, cl := range cls {
			pt := []byte(fmt.Sprintf("version %d on node %d", v, i))
			e, err := cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, EncryptionContext: ec})
			if err != nil {
				t.Fatal(err)
			}
			if e.KeyVersion != v || e.KeyID != k.ID {
				t.Fatalf("node %d encrypted with %s v%d, want %s v%d", i, e.KeyID, e.KeyVersion, k.ID, v)
			}
			all = append(all, sealed{v, pt, e.Ciphertext})
		}
	}
	for _, s := range all {
		for i, cl := range cls {
			d, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: s.ct, EncryptionContext: ec})
			if err != nil || !bytes.Equal(d.Plaintext, s.pt) || d.KeyVersion != s.version {
				t.Errorf("v%d ciphertext on node %d: %q v%d, %v", s.version, i, d.Plaintext, d.KeyVersion, err)
			}
			d, err = cl.DecryptWithKey(ctx, k.ID, wire.DecryptRequest{Ciphertext: s.ct, EncryptionContext: ec})
			if err != nil || !bytes.Equal(d.Plaintext, s.pt) {
				t.Errorf("v%d ciphertext on node %d, key named: %v", s.version, i, err)
			}
		}
	}

	// Re-encrypt an old ciphertext on each node: the newest version, and
	// the result opens everywhere.
	for i, cl := range cls {
		re, err := cl.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: all[0].ct, EncryptionContext: ec, DestinationEncryptionContext: ec})
		if err != nil {
			t.Fatal(err)
		}
		if re.KeyID != k.ID || re.KeyVersion != 3 {
			t.Fatalf("re-encrypt on node %d gave %s v%d, want %s v3", i, re.KeyID, re.KeyVersion, k.ID)
		}
		d, err := cls[(i+1)%3].Decrypt(ctx, wire.DecryptRequest{Ciphertext: re.Ciphertext, EncryptionContext: ec})
		if err != nil || !bytes.Equal(d.Plaintext, all[0].pt) || d.KeyVersion != 3 {
			t.Fatalf("re-encrypted ciphertext on another node: %q v%d, %v", d.Plaintext, d.KeyVersion, err)
		}
	}

	// Data keys: the returned plaintext is what the ciphertext holds, as
	// another node decrypts it.
	for i, cl := range cls {
		for _, size := range []int{128, 256} {
			dk, err := cl.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{KeySize: size, EncryptionContext: ec})
			if err != nil {
				t.Fatal(err)
			}
			if len(dk.Plaintext) != size/8 || dk.KeyVersion != 3 {
				t.Fatalf("node %d: %d-bit data key of %d bytes under v%d", i, size, len(dk.Plaintext), dk.KeyVersion)
			}
			d, err := cls[(i+2)%3].Decrypt(ctx, wire.DecryptRequest{Ciphertext: dk.Ciphertext, EncryptionContext: ec})
			if err != nil || !bytes.Equal(d.Plaintext, dk.Plaintext) {
				t.Fatalf("node %d: data key decrypted on another node differs: %v", i, err)
			}
		}
		dk, err := cl.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{WithoutPlaintext: true})
		if err != nil {
			t.Fatal(err)
		}
		if dk.Plaintext != nil {
			t.Fatalf("node %d: without_plaintext returned a plaintext", i)
		}
		d, err := cls[(i+1)%3].Decrypt(ctx, wire.DecryptRequest{Ciphertext: dk.Ciphertext})
		if err != nil || len(d.Plaintext) != 32 {
			t.Fatalf("node %d: data key without plaintext: %d bytes, %v", i, len(d.Plaintext), err)
		}
	}

	// 64 KiB, the default limit, between every pair of nodes.
	big := make([]byte, 64<<10)
	rand.Read(big)
	for i, cl := range cls {
		e, err := cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: big, EncryptionContext: ec})
		if err != nil {
			t.Fatalf("64 KiB encrypt on node %d: %v", i, err)
		}
		for j, other := range cls {
			d, err := other.Decrypt(ctx, wire.DecryptRequest{Ciphertext: e.Ciphertext, EncryptionContext: ec})
			if err != nil || !bytes.Equal(d.Plaintext, big) {
				t.Fatalf("64 KiB from node %d decrypted on node %d: %d bytes, %v", i, j, len(d.Plaintext), err)
			}
		}
	}
	_, err = cls[0].Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: append(big, 0)})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != wire.CodePayloadTooLarge {
		t.Fatalf("64 KiB + 1: got %v, want 413 payload_too_large", err)
	}
	if lines := apiErrorLines(logs); len(lines) > 0 {
		t.Errorf("the API logged at Error level:\n%s", strings.Join(lines, "\n"))
	}
}
