package test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/client"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/server"
	"github.com/keyzone/keyzone/test/clustertest"
)

// Organizations, tokens and roles against real multi-zone deployments:
// zone-a is the home zone, where organizations and tokens are written;
// every zone authenticates from its own replicated state.

// tenancyZones starts zones of one node each (zone-a, zone-b, ... as
// many as n), with the test organization.
func tenancyZones(t *testing.T, n int) []*clustertest.Cluster {
	t.Helper()
	names := []string{"zone-a", "zone-b", "zone-c"}[:n]
	return clustertest.NewZones(t, 1, names, clustertest.Options{})
}

// tokenClient is a client of node 0 of zone z with token secret.
func tokenClient(t *testing.T, z *clustertest.Cluster, secret string) *client.Client {
	t.Helper()
	cl, err := client.New(z.Nodes[0].Addr(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// asAPIError returns err as the API's error, failing the test when it is
// not one.
func asAPIError(t *testing.T, what string, err error) *client.Error {
	t.Helper()
	apiErr, ok := errors.AsType[*client.Error](err)
	if !ok {
		t.Fatalf("%s: got %v, want an API error", what, err)
	}
	return apiErr
}

// sameAnswer checks that got is exactly the answer want is, status, code
// and message, once each id of pairs (got's id, want's id) is swapped:
// a caller can't tell the two cases apart.
func sameAnswer(t *testing.T, what string, got, want error, ids ...string) {
	t.Helper()
	g, w := asAPIError(t, what, got), asAPIError(t, what+" (the reference)", want)
	msg := g.Message
	for i := 0; i+1 < len(ids); i += 2 {
		msg = strings.ReplaceAll(msg, ids[i], ids[i+1])
	}
	if g.StatusCode != w.StatusCode || g.Code != w.Code || msg != w.Message {
		t.Errorf("%s: got %d %s %q, want the same answer as %d %s %q", what, g.StatusCode, g.Code, g.Message, w.StatusCode, w.Code, w.Message)
	}
}

// wantRefused checks a refusal's status and code.
func wantRefused(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %d %s", what, status, code)
		return
	}
	apiErr, ok := errors.AsType[*client.Error](err)
	if !ok || apiErr.StatusCode != status || apiErr.Code != code {
		t.Errorf("%s: got %v, want %d %s", what, err, status, code)
	}
}

// newOrganization creates an organization in the home zone (zones[0])
// and an org-admin token of it, and waits until the token authenticates
// in every zone.
func newOrganization(t *testing.T, zones []*clustertest.Cluster, name string) (wire.Organization, string) {
	t.Helper()
	org, secret := zones[0].CreateOrganization(name)
	for _, z := range zones[1:] {
		z.WaitToken(secret, 30*time.Second)
	}
	return org, secret
}

// newToken creates a token of org through cl and waits until it
// authenticates in every zone.
func newToken(t *testing.T, ctx context.Context, zones []*clustertest.Cluster, cl *client.Client, org string, req wire.CreateTokenRequest) wire.CreatedToken {
	t.Helper()
	tok, err := cl.CreateToken(ctx, org, req)
	if err != nil {
		t.Fatalf("create a %s token: %v", req.Role, err)
	}
	if tok.Secret == "" || tok.ID == "" || tok.Role != req.Role || tok.Organization != org {
		t.Fatalf("created token %+v (secret %t), want a %s token of %s with a secret", tok.Token, tok.Secret != "", req.Role, org)
	}
	for _, z := range zones {
		z.WaitToken(tok.Secret, 30*time.Second)
	}
	return tok
}

// wantForbidden checks a 403 forbidden.
func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	wantRefused(t, what, err, http.StatusForbidden, wire.CodeForbidden)
}

// wantOK checks a call that must succeed.
func wantOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// missingKeyID is a well-formed key id no zone holds.
const missingKeyID = "00000000-0000-4000-8000-00000000abcd"

// TestTenancy_Isolation: organization B's org-admin token can neither see
// nor use organization A's keys, in the home zone and in a replica zone.
// Every answer is the one a missing key gets (same status, code and
// message once the ids are swapped), a ciphertext of A's is to B's
// decrypt what a garbage ciphertext is, and nothing B sent changed A's key.
func TestTenancy_Isolation(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 3)
	ctx := testCtx(t, 90*time.Second)
	a := zones[0]
	orgB, secretB := newOrganization(t, zones, "org-b")
	adminA := tokenClient(t, a, a.Token)

	// A's key lives in every zone (primary in zone-a); A's ciphertexts
	// of it and of A's default key.
	kA, err := adminA.CreateKey(ctx, wire.CreateKeyRequest{Name: "a-secret", Tags: []string{"team:a"}, ReplicaZones: []string{"zone-b", "zone-c"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, kA.ID)
	ec := map[string]string{"tenant": "a"}
	ctA, err := adminA.Encrypt(ctx, kA.ID, wire.EncryptRequest{Plaintext: []byte("a's secret"), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	ctDefA, err := adminA.Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("a's default")})
	if err != nil {
		t.Fatal(err)
	}
	if ctDefA.KeyID != a.Org.DefaultKeyID {
		t.Fatalf("A's default key encrypted as %s, want %s", ctDefA.KeyID, a.Org.DefaultKeyID)
	}
	// A ciphertext with a well-formed header naming a key no zone holds.
	garbage := append([]byte{ctA.Ciphertext[0]}, make([]byte, len(ctA.Ciphertext)-1)...)

	for _, z := range zones[:2] {
		t.Run(z.Zone(), func(t *testing.T) {
			b := tokenClient(t, z, secretB)
			// B's own key in this zone, for re-encrypt.
			var own wire.Key
			var err error
			if z == a {
				if own, err = b.CreateKey(ctx, wire.CreateKeyRequest{Name: "b-own"}); err != nil {
					t.Fatal(err)
				}
			} else if own, err = b.GetKey(ctx, "default"); err != nil {
				t.Fatal(err)
			}
			ctB, err := b.Encrypt(ctx, own.ID, wire.EncryptRequest{Plaintext: []byte("b's own")})
			if err != nil {
				t.Fatal(err)
			}

			list, err := b.ListKeys(ctx, client.ListKeysOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range list.Keys {
				if k.Organization != orgB.ID || k.ID == kA.ID || k.ID == a.Org.DefaultKeyID {
					t.Errorf("B's list shows %s of organization %s", k.ID, k.Organization)
				}
			}
			if !slices.ContainsFunc(list.Keys, func(k wire.Key) bool { return k.ID == orgB.DefaultKeyID }) {
				t.Errorf("B's list lacks B's default key %s: %+v", orgB.DefaultKeyID, list.Keys)
			}
			if list, err := b.ListKeys(ctx, client.ListKeysOptions{Tag: "team:a"}); err != nil || len(list.Keys) != 0 {
				t.Errorf("B's list of A's tag: %+v, %v; want none", list.Keys, err)
			}
			if d, err := b.GetKey(ctx, "default"); err != nil || d.ID != orgB.DefaultKeyID {
				t.Errorf("B's default key: %s, %v; want %s", d.ID, err, orgB.DefaultKeyID)
			}

			for _, id := range []string{kA.ID, a.Org.DefaultKeyID} {
				swap := []string{id, missingKeyID}
				_, got := b.GetKey(ctx, id)
				_, want := b.GetKey(ctx, missingKeyID)
				sameAnswer(t, "get A's key", got, want, swap...)
				wantRefused(t, "get A's key", got, http.StatusNotFound, wire.CodeKeyNotFound)
				_, got = b.KeyVersions(ctx, id)
				_, want = b.KeyVersions(ctx, missingKeyID)
				sameAnswer(t, "versions of A's key", got, want, swap...)
				_, got = b.Encrypt(ctx, id, wire.EncryptRequest{Plaintext: []byte("x")})
				_, want = b.Encrypt(ctx, missingKeyID, wire.EncryptRequest{Plaintext: []byte("x")})
				sameAnswer(t, "encrypt under A's key", got, want, swap...)
				_, got = b.GenerateDataKey(ctx, id, wire.GenerateDataKeyRequest{})
				_, want = b.GenerateDataKey(ctx, missingKeyID, wire.GenerateDataKeyRequest{})
				sameAnswer(t, "data key under A's key", got, want, swap...)
				_, got = b.DecryptWithKey(ctx, id, wire.DecryptRequest{Ciphertext: ctA.Ciphertext, EncryptionContext: ec})
				_, want = b.DecryptWithKey(ctx, missingKeyID, wire.DecryptRequest{Ciphertext: ctA.Ciphertext, EncryptionContext: ec})
				sameAnswer(t, "decrypt naming A's key", got, want, swap...)
				_, got = b.ReEncryptWithKey(ctx, id, wire.ReEncryptRequest{Ciphertext: ctA.Ciphertext, EncryptionContext: ec})
				_, want = b.ReEncryptWithKey(ctx, missingKeyID, wire.ReEncryptRequest{Ciphertext: ctA.Ciphertext, EncryptionContext: ec})
				sameAnswer(t, "re-encrypt naming A's key", got, want, swap...)
				_, got = b.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: ctB.Ciphertext, DestinationKeyID: id})
				_, want = b.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: ctB.Ciphertext, DestinationKeyID: missingKeyID})
				sameAnswer(t, "re-encrypt to A's key", got, want, swap...)
				_, got = b.RotateKey(ctx, id)
				_, want = b.RotateKey(ctx, missingKeyID)
				sameAnswer(t, "rotate A's key", got, want, swap...)
				_, got = b.DisableKey(ctx, id)
				_, want = b.DisableKey(ctx, missingKeyID)
				sameAnswer(t, "disable A's key", got, want, swap...)
				_, got = b.ScheduleDeletion(ctx, id, 7*24*time.Hour)
				_, want = b.ScheduleDeletion(ctx, missingKeyID, 7*24*time.Hour)
				sameAnswer(t, "schedule the deletion of A's key", got, want, swap...)
			}
			// A's ciphertexts are garbage to B, whether the key comes
			// from the ciphertext or not.
			for name, ct := range map[string]wire.EncryptResponse{"A's key": ctA, "A's default key": ctDefA} {
				_, got := b.Decrypt(ctx, wire.DecryptRequest{Ciphertext: ct.Ciphertext, EncryptionContext: ec})
				_, want := b.Decrypt(ctx, wire.DecryptRequest{Ciphertext: garbage, EncryptionContext: ec})
				sameAnswer(t, "decrypt a ciphertext of "+name, got, want)
				wantRefused(t, "decrypt a ciphertext of "+name, got, http.StatusUnprocessableEntity, wire.CodeDecryptFailed)
				_, got = b.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: ct.Ciphertext, EncryptionContext: ec, DestinationKeyID: own.ID})
				_, want = b.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: garbage, EncryptionContext: ec, DestinationKeyID: own.ID})
				sameAnswer(t, "re-encrypt a ciphertext of "+name, got, want)
			}
			// Nor do B's tokens reach A's organization record.
			_, got := b.GetOrganization(ctx, a.Org.ID)
			_, want := b.GetOrganization(ctx, "no-such-org")
			sameAnswer(t, "B gets A's organization", got, want, a.Org.ID, "no-such-org")
			_, got = b.ListTokens(ctx, a.Org.Name)
			_, want = b.ListTokens(ctx, "no-such-org")
			sameAnswer(t, "B lists A's tokens", got, want, a.Org.Name, "no-such-org")
		})
	}

	// A's key is as A left it, and opens A's ciphertexts in every zone.
	got, err := adminA.GetKey(ctx, kA.ID)
	if err != nil || got.State != "enabled" || got.CurrentVersion != 1 || got.PendingVersion != 0 || got.Description != "" {
		t.Fatalf("A's key after B's attempts: %+v, %v", got, err)
	}
	for _, z := range zones {
		dec, err := tokenClient(t, z, a.Token).Decrypt(ctx, wire.DecryptRequest{Ciphertext: ctA.Ciphertext, EncryptionContext: ec})
		if err != nil || string(dec.Plaintext) != "a's secret" {
			t.Fatalf("A decrypts its ciphertext in %s: %q, %v", z.Zone(), dec.Plaintext, err)
		}
	}
	t.Logf("organization %s saw none of %s's keys in zone-a and zone-b", orgB.ID, a.Org.ID)
}

// TestTenancy_Roles: each role may call its routes and is refused the
// others with 403 forbidden, in the home zone and in another zone; the
// operator manages organizations and tokens but uses no organization's
// keys; an org-admin can't reach another organization's tokens (404).
func TestTenancy_Roles(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 2)
	ctx := testCtx(t, 90*time.Second)
	a := zones[0]
	org := a.Org.ID
	admin := tokenClient(t, a, a.Token)
	k, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "roles", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	enc, err := admin.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("for the roles")})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, role := range []string{"key-admin", "crypto-user", "auditor"} {
		secrets[role] = newToken(t, ctx, zones, admin, org, wire.CreateTokenRequest{Role: role}).Secret
	}
	// Another organization, with a token of its own.
	orgB, secretB := newOrganization(t, zones, "roles-b")
	tokB := newToken(t, ctx, zones, tokenClient(t, a, secretB), orgB.ID, wire.CreateTokenRequest{Role: "auditor"})

	for _, z := range zones {
		t.Run(z.Zone(), func(t *testing.T) {
			// crypto-user: crypto only.
			cu := tokenClient(t, z, secrets["crypto-user"])
			e, err := cu.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
			wantOK(t, "crypto-user encrypts", err)
			_, err = cu.Decrypt(ctx, wire.DecryptRequest{Ciphertext: e.Ciphertext})
			wantOK(t, "crypto-user decrypts", err)
			_, err = cu.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{})
			wantOK(t, "crypto-user makes a data key", err)
			_, err = cu.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: enc.Ciphertext})
			wantOK(t, "crypto-user re-encrypts", err)
			_, err = cu.RotateKey(ctx, k.ID)
			wantForbidden(t, "crypto-user rotates", err)
			_, err = cu.ScheduleDeletion(ctx, k.ID, 7*24*time.Hour)
			wantForbidden(t, "crypto-user schedules a deletion", err)
			_, err = cu.DisableKey(ctx, k.ID)
			wantForbidden(t, "crypto-user disables", err)
			_, err = cu.CreateKey(ctx, wire.CreateKeyRequest{Name: "by-crypto-user"})
			wantForbidden(t, "crypto-user creates a key", err)
			_, err = cu.GetKey(ctx, k.ID)
			wantForbidden(t, "crypto-user reads a key", err)
			_, err = cu.ListKeys(ctx, client.ListKeysOptions{})
			wantForbidden(t, "crypto-user lists keys", err)
			_, err = cu.KeyVersions(ctx, k.ID)
			wantForbidden(t, "crypto-user lists versions", err)
			_, err = cu.ListTokens(ctx, org)
			wantForbidden(t, "crypto-user lists tokens", err)
			_, err = cu.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "org-admin"})
			wantForbidden(t, "crypto-user creates a token", err)

			// key-admin: lifecycle and reads, no crypto.
			ka := tokenClient(t, z, secrets["key-admin"])
			_, err = ka.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
			wantForbidden(t, "key-admin encrypts", err)
			_, err = ka.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
			wantForbidden(t, "key-admin decrypts", err)
			_, err = ka.DecryptWithKey(ctx, k.ID, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
			wantForbidden(t, "key-admin decrypts naming the key", err)
			_, err = ka.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{})
			wantForbidden(t, "key-admin makes a data key", err)
			_, err = ka.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: enc.Ciphertext})
			wantForbidden(t, "key-admin re-encrypts", err)
			_, err = ka.GetKey(ctx, k.ID)
			wantOK(t, "key-admin reads a key", err)
			_, err = ka.UpdateKey(ctx, k.ID, wire.UpdateKeyRequest{Description: ptr("by the key-admin in " + z.Zone())})
			wantOK(t, "key-admin updates a key", err)
			mine, err := ka.CreateKey(ctx, wire.CreateKeyRequest{Name: "by-key-admin"})
			wantOK(t, "key-admin creates a key", err)
			if err == nil {
				_, err = ka.RotateKey(ctx, mine.ID)
				wantOK(t, "key-admin rotates", err)
			}
			_, err = ka.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "crypto-user"})
			wantForbidden(t, "key-admin creates a token", err)
			_, err = ka.ListTokens(ctx, org)
			wantForbidden(t, "key-admin lists tokens", err)

			// auditor: reads keys and tokens, changes nothing, no crypto.
			au := tokenClient(t, z, secrets["auditor"])
			list, err := au.ListKeys(ctx, client.ListKeysOptions{})
			wantOK(t, "auditor lists keys", err)
			if !slices.ContainsFunc(list.Keys, func(w wire.Key) bool { return w.ID == k.ID }) {
				t.Errorf("the auditor's list lacks %s", k.ID)
			}
			_, err = au.GetKey(ctx, k.ID)
			wantOK(t, "auditor reads a key", err)
			_, err = au.KeyVersions(ctx, k.ID)
			wantOK(t, "auditor lists versions", err)
			toks, err := au.ListTokens(ctx, org)
			wantOK(t, "auditor lists tokens", err)
			if len(toks.Tokens) < 4 {
				t.Errorf("the auditor lists %d tokens, want at least 4", len(toks.Tokens))
			}
			_, err = au.CreateKey(ctx, wire.CreateKeyRequest{Name: "by-auditor"})
			wantForbidden(t, "auditor creates a key", err)
			_, err = au.RotateKey(ctx, k.ID)
			wantForbidden(t, "auditor rotates", err)
			_, err = au.DisableKey(ctx, k.ID)
			wantForbidden(t, "auditor disables", err)
			_, err = au.UpdateKey(ctx, k.ID, wire.UpdateKeyRequest{Description: ptr("by the auditor")})
			wantForbidden(t, "auditor updates", err)
			_, err = au.ScheduleDeletion(ctx, k.ID, 7*24*time.Hour)
			wantForbidden(t, "auditor schedules a deletion", err)
			_, err = au.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
			wantForbidden(t, "auditor encrypts", err)
			_, err = au.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
			wantForbidden(t, "auditor decrypts", err)
			_, err = au.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{})
			wantForbidden(t, "auditor makes a data key", err)
			_, err = au.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "auditor"})
			wantForbidden(t, "auditor creates a token", err)
			_, err = au.RevokeToken(ctx, org, toks.Tokens[0].ID)
			wantForbidden(t, "auditor revokes a token", err)

			// The operator: organizations and tokens, no keys.
			op := tokenClient(t, z, a.OperatorToken)
			_, err = op.ListKeys(ctx, client.ListKeysOptions{})
			wantForbidden(t, "operator lists keys", err)
			_, err = op.GetKey(ctx, k.ID)
			wantForbidden(t, "operator reads a key", err)
			_, err = op.CreateKey(ctx, wire.CreateKeyRequest{Name: "by-operator"})
			wantForbidden(t, "operator creates a key", err)
			_, err = op.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
			wantForbidden(t, "operator encrypts", err)
			_, err = op.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
			wantForbidden(t, "operator decrypts", err)
			_, err = op.Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("x")})
			wantForbidden(t, "operator encrypts under \"default\"", err)
			orgs, err := op.ListOrganizations(ctx)
			wantOK(t, "operator lists organizations", err)
			if len(orgs.Organizations) < 2 {
				t.Errorf("the operator lists %d organizations, want at least 2", len(orgs.Organizations))
			}
			// Created through this zone (forwarded to the home zone from
			// zone-b).
			made, err := op.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "by-operator-in-" + z.Zone()})
			wantOK(t, "operator creates an organization", err)
			if err == nil {
				tok, err := op.CreateToken(ctx, made.ID, wire.CreateTokenRequest{Role: "org-admin"})
				wantOK(t, "operator creates a token of the new organization", err)
				if err == nil {
					z.WaitToken(tok.Secret, 30*time.Second)
				}
			}
			opTok, err := op.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "auditor", Description: "by the operator"})
			wantOK(t, "operator creates a token of the test organization", err)
			if err == nil {
				_, err = op.RevokeToken(ctx, org, opTok.ID)
				wantOK(t, "operator revokes a token of the test organization", err)
			}
			who, err := op.WhoAmI(ctx)
			if err != nil || !who.Operator || who.Organization != "" || who.Role != "operator" {
				t.Errorf("operator's whoami: %+v, %v", who, err)
			}

			// org-admin: its own organization only.
			oa := tokenClient(t, z, a.Token)
			_, err = oa.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "by-org-admin-" + z.Zone()})
			wantForbidden(t, "org-admin creates an organization", err)
			_, err = oa.ListOrganizations(ctx)
			wantForbidden(t, "org-admin lists organizations", err)
			_, err = oa.UpdateOrganization(ctx, org, wire.UpdateOrganizationRequest{KeyQuota: ptr(5)})
			wantForbidden(t, "org-admin changes its quota", err)
			_, err = oa.Peers(ctx)
			wantForbidden(t, "org-admin lists peers", err)
			for _, ref := range []string{orgB.ID, orgB.Name} {
				_, err = oa.ListTokens(ctx, ref)
				wantRefused(t, "org-admin lists B's tokens", err, http.StatusNotFound, wire.CodeOrganizationNotFound)
				_, err = oa.CreateToken(ctx, ref, wire.CreateTokenRequest{Role: "org-admin"})
				wantRefused(t, "org-admin creates a token in B", err, http.StatusNotFound, wire.CodeOrganizationNotFound)
				_, err = oa.RevokeToken(ctx, ref, tokB.ID)
				wantRefused(t, "org-admin revokes B's token", err, http.StatusNotFound, wire.CodeOrganizationNotFound)
				_, err = oa.GetOrganization(ctx, ref)
				wantRefused(t, "org-admin reads B", err, http.StatusNotFound, wire.CodeOrganizationNotFound)
			}
			// B's token id under A's own path: no such token of A.
			_, err = oa.RevokeToken(ctx, org, tokB.ID)
			_, want := oa.RevokeToken(ctx, org, "00000000deadbeef")
			sameAnswer(t, "org-admin revokes B's token under its own organization", err, want, tokB.ID, "00000000deadbeef")
			wantRefused(t, "org-admin revokes B's token under its own organization", err, http.StatusNotFound, wire.CodeTokenNotFound)
			if _, err := tokenClient(t, z, tokB.Secret).WhoAmI(ctx); err != nil {
				t.Errorf("B's token after A's attempts: %v", err)
			}
		})
	}
	// Nothing the refused calls asked for happened.
	got, err := admin.GetKey(ctx, k.ID)
	if err != nil || got.State != "enabled" || got.CurrentVersion != 1 || got.PendingVersion != 0 || !strings.HasPrefix(got.Description, "by the key-admin") {
		t.Fatalf("the key after the refused calls: %+v, %v", got, err)
	}
	if o, err := tokenClient(t, a, a.OperatorToken).GetOrganization(ctx, org); err != nil || o.KeyQuota == 5 {
		t.Fatalf("the organization after the refused calls: %+v, %v", o, err)
	}
}

// TestTenancy_RestrictedCryptoUser: a crypto-user token limited to key
// ids, or to tags, uses those keys and is refused every other key of its
// organization (403 forbidden) in every zone, the key named or read from
// the ciphertext, as source or destination of a re-encrypt.
func TestTenancy_RestrictedCryptoUser(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 3)
	ctx := testCtx(t, 90*time.Second)
	a := zones[0]
	org := a.Org.ID
	admin := tokenClient(t, a, a.Token)
	everywhere := []string{"zone-b", "zone-c"}
	named, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "named", ReplicaZones: everywhere})
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "tagged", Tags: []string{"team:pay"}, ReplicaZones: everywhere})
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin.CreateKey(ctx, wire.CreateKeyRequest{Name: "other", Tags: []string{"team:ops"}, ReplicaZones: everywhere})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []wire.Key{named, tagged, other} {
		waitConverged(t, zones, a, k.ID)
	}
	byID := newToken(t, ctx, zones, admin, org, wire.CreateTokenRequest{Role: "crypto-user", KeyIDs: []string{named.ID, "default"}})
	if !slices.Equal(byID.KeyIDs, sortedStrings(named.ID, a.Org.DefaultKeyID)) {
		t.Errorf("the token's key ids: %v, want %s and the default key %s", byID.KeyIDs, named.ID, a.Org.DefaultKeyID)
	}
	byTag := newToken(t, ctx, zones, admin, org, wire.CreateTokenRequest{Role: "crypto-user", Tags: []string{"team:pay"}})
	cts := map[string][]byte{}
	for _, k := range []wire.Key{named, tagged, other} {
		e, err := admin.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("under " + k.Name)})
		if err != nil {
			t.Fatal(err)
		}
		cts[k.Name] = e.Ciphertext
	}
	for _, z := range zones {
		t.Run(z.Zone(), func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				secret  string
				allowed wire.Key
			}{{"by key id", byID.Secret, named}, {"by tag", byTag.Secret, tagged}} {
				cl := tokenClient(t, z, tc.secret)
				if e, err := cl.Encrypt(ctx, tc.allowed.ID, wire.EncryptRequest{Plaintext: []byte("x")}); err != nil {
					t.Errorf("%s: encrypt under its key: %v", tc.name, err)
				} else if _, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: e.Ciphertext}); err != nil {
					t.Errorf("%s: decrypt its own ciphertext: %v", tc.name, err)
				}
				if _, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: cts[tc.allowed.Name]}); err != nil {
					t.Errorf("%s: decrypt the admin's ciphertext of its key: %v", tc.name, err)
				}
				_, err := cl.Encrypt(ctx, other.ID, wire.EncryptRequest{Plaintext: []byte("x")})
				wantForbidden(t, tc.name+": encrypt under another key", err)
				_, err = cl.GenerateDataKey(ctx, other.ID, wire.GenerateDataKeyRequest{})
				wantForbidden(t, tc.name+": data key under another key", err)
				_, err = cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: cts["other"]})
				wantForbidden(t, tc.name+": decrypt another key's ciphertext", err)
				_, err = cl.DecryptWithKey(ctx, other.ID, wire.DecryptRequest{Ciphertext: cts["other"]})
				wantForbidden(t, tc.name+": decrypt naming another key", err)
				_, err = cl.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: cts["other"], DestinationKeyID: tc.allowed.ID})
				wantForbidden(t, tc.name+": re-encrypt from another key", err)
				_, err = cl.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: cts[tc.allowed.Name], DestinationKeyID: other.ID})
				wantForbidden(t, tc.name+": re-encrypt to another key", err)
			}
			// "default" in the token's key ids names the default key.
			cl := tokenClient(t, z, byID.Secret)
			if _, err := cl.Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("x")}); err != nil {
				t.Errorf("by key id: encrypt under the default key it names: %v", err)
			}
			_, err := tokenClient(t, z, byTag.Secret).Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("x")})
			wantForbidden(t, "by tag: encrypt under the default key", err)
			_, err = cl.Encrypt(ctx, tagged.ID, wire.EncryptRequest{Plaintext: []byte("x")})
			wantForbidden(t, "by key id: encrypt under the tagged key", err)
		})
	}
}

func sortedStrings(v ...string) []string {
	slices.Sort(v)
	return v
}

// waitRefusedEverywhere polls every zone until the token gets 401 there,
// within timeout, and returns how long each zone took from start.
func waitRefusedEverywhere(t *testing.T, zones []*clustertest.Cluster, secret string, start time.Time, timeout time.Duration) map[string]time.Duration {
	t.Helper()
	took := map[string]time.Duration{}
	clustertest.WaitFor(t, timeout, "the token to be refused in every zone", func() bool {
		for _, z := range zones {
			if _, done := took[z.Zone()]; done {
				continue
			}
			for _, n := range z.Nodes {
				if n.Server() == nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				cl, err := client.New(n.Addr(), secret)
				if err != nil {
					t.Fatal(err)
				}
				_, err = cl.WhoAmI(ctx)
				cancel()
				if err == nil {
					return false
				}
				if apiErr, ok := errors.AsType[*client.Error](err); !ok || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != wire.CodeUnauthorized {
					t.Fatalf("%s: got %v, want 401 unauthorized", n.ID, err)
				}
			}
			took[z.Zone()] = time.Since(start)
		}
		return true
	})
	return took
}

// TestTenancy_RevocationAndExpiry: a token revoked in the home zone is
// refused (401) in every zone within a bounded time; a token that
// expires is refused in every zone once its time is up; token creation
// and revocation sent to a zone other than the home zone are forwarded
// there and take effect everywhere.
func TestTenancy_RevocationAndExpiry(t *testing.T) {
	t.Parallel()
	const bound = 10 * time.Second
	zones := tenancyZones(t, 3)
	ctx := testCtx(t, 90*time.Second)
	a, b, c := zones[0], zones[1], zones[2]
	org := a.Org.ID
	admin := tokenClient(t, a, a.Token)

	// Revoked in the home zone.
	tok := newToken(t, ctx, zones, admin, org, wire.CreateTokenRequest{Role: "crypto-user"})
	for _, z := range zones {
		if _, err := tokenClient(t, z, tok.Secret).Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("x")}); err != nil {
			t.Fatalf("the token before its revocation, in %s: %v", z.Zone(), err)
		}
	}
	start := time.Now()
	revoked, err := admin.RevokeToken(ctx, org, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if revoked.RevokedAt == nil || revoked.ID != tok.ID {
		t.Fatalf("revoke answered %+v", revoked)
	}
	// The home zone refuses it as soon as the revocation is answered.
	_, err = tokenClient(t, a, tok.Secret).WhoAmI(ctx)
	wantRefused(t, "the revoked token in the home zone", err, http.StatusUnauthorized, wire.CodeUnauthorized)
	took := waitRefusedEverywhere(t, zones, tok.Secret, start, bound)
	t.Logf("revoked in zone-a: refused in zone-a after %s, zone-b after %s, zone-c after %s",
		took["zone-a"].Round(time.Millisecond), took["zone-b"].Round(time.Millisecond), took["zone-c"].Round(time.Millisecond))
	for _, z := range zones {
		_, err := tokenClient(t, z, tok.Secret).Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("x")})
		wantRefused(t, "crypto with the revoked token in "+z.Zone(), err, http.StatusUnauthorized, wire.CodeUnauthorized)
	}
	// A revoked token is listed as such, never with its secret.
	list, err := admin.ListTokens(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list.Tokens, func(w wire.Token) bool { return w.ID == tok.ID })
	if i < 0 || list.Tokens[i].RevokedAt == nil {
		t.Errorf("the token list does not show %s revoked: %+v", tok.ID, list.Tokens)
	}

	// Created through zone-b and revoked through zone-c: both forwarded
	// to the home zone.
	viaB := newToken(t, ctx, zones, tokenClient(t, b, a.Token), org, wire.CreateTokenRequest{Role: "auditor", Description: "made through zone-b"})
	if got, ok := a.Nodes[0].Server().FSM().Token(viaB.ID); !ok || got.HomeZone != "zone-a" {
		t.Fatalf("a token created through zone-b: %+v in zone-a's state, want one written by zone-a", got)
	}
	start = time.Now()
	if _, err := tokenClient(t, c, a.Token).RevokeToken(ctx, org, viaB.ID); err != nil {
		t.Fatalf("revoke through zone-c: %v", err)
	}
	took = waitRefusedEverywhere(t, zones, viaB.Secret, start, bound)
	t.Logf("revoked through zone-c: refused in zone-a after %s, zone-b after %s, zone-c after %s",
		took["zone-a"].Round(time.Millisecond), took["zone-b"].Round(time.Millisecond), took["zone-c"].Round(time.Millisecond))

	// Expiry: every zone holds the token; once its time is up, each
	// refuses it by its own clock, its record still there.
	exp, err := admin.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "crypto-user", ExpiresIn: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if exp.ExpiresAt == nil || exp.ExpiresAt.Sub(exp.CreatedAt) != 2*time.Second {
		t.Fatalf("token with expires_in 2s: created %v, expires %v", exp.CreatedAt, exp.ExpiresAt)
	}
	clustertest.WaitFor(t, bound, "the expiring token to reach every zone", func() bool {
		for _, z := range zones {
			if _, ok := z.Nodes[0].Server().FSM().Token(exp.ID); !ok {
				return false
			}
		}
		return true
	})
	if time.Until(*exp.ExpiresAt) > 500*time.Millisecond {
		for _, z := range zones {
			if _, err := tokenClient(t, z, exp.Secret).WhoAmI(ctx); err != nil && time.Until(*exp.ExpiresAt) > 100*time.Millisecond {
				t.Errorf("the token before its expiry, in %s: %v", z.Zone(), err)
			}
		}
	} else {
		t.Logf("the token reached every zone only %s before its expiry: not tried before it", time.Until(*exp.ExpiresAt))
	}
	time.Sleep(time.Until(*exp.ExpiresAt) + 10*time.Millisecond)
	for _, z := range zones {
		_, err := tokenClient(t, z, exp.Secret).Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("x")})
		wantRefused(t, "the expired token in "+z.Zone(), err, http.StatusUnauthorized, wire.CodeUnauthorized)
		if _, ok := z.Nodes[0].Server().FSM().Token(exp.ID); !ok {
			t.Errorf("%s: the expired token's record is gone; the refusal is not the expiry's", z.Zone())
		}
	}
	// The answer is the one any wrong token gets.
	_, got := tokenClient(t, b, exp.Secret).WhoAmI(ctx)
	_, want := tokenClient(t, b, "kzt_0123456789abcdef_"+strings.Repeat("A", 43)).WhoAmI(ctx)
	sameAnswer(t, "an expired token", got, want)
	_, got = tokenClient(t, c, tok.Secret).WhoAmI(ctx)
	sameAnswer(t, "a revoked token", got, want)
}

// TestTenancy_DefaultKey: an organization's default key exists in every
// zone from the start, "default" names it, a ciphertext made under it in
// one zone opens in another, and it refuses to be deleted, disabled,
// unprotected, to stop rotating or to lose a replica zone (409
// default_key), in the home zone and through another zone.
func TestTenancy_DefaultKey(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 3)
	ctx := testCtx(t, 90*time.Second)
	a, b, c := zones[0], zones[1], zones[2]
	id := a.Org.DefaultKeyID
	if id == "" {
		t.Fatalf("the test organization has no default key: %+v", a.Org)
	}
	for _, z := range zones {
		k, err := tokenClient(t, z, z.Token).GetKey(ctx, "default")
		if err != nil {
			t.Fatalf("GET /v1/keys/default in %s: %v", z.Zone(), err)
		}
		period, _ := time.ParseDuration(k.RotationPolicy.RotationPeriod)
		if k.ID != id || k.Organization != a.Org.ID || !k.Protected || k.State != "enabled" || period != 365*24*time.Hour ||
			k.RotationPolicy.NextRotationAt.IsZero() || k.PrimaryZone != "zone-a" || !slices.Equal(k.ReplicaZones, []string{"zone-b", "zone-c"}) {
			t.Errorf("the default key in %s: %+v", z.Zone(), k)
		}
		if byID, err := tokenClient(t, z, z.Token).GetKey(ctx, id); err != nil || byID.ID != id {
			t.Errorf("the default key by its id in %s: %v", z.Zone(), err)
		}
	}
	// A crypto-user token, unrestricted, encrypts in zone-b and decrypts
	// in zone-c without naming any key id.
	cu := newToken(t, ctx, zones, tokenClient(t, a, a.Token), a.Org.ID, wire.CreateTokenRequest{Role: "crypto-user"})
	enc, err := tokenClient(t, b, cu.Secret).Encrypt(ctx, "default", wire.EncryptRequest{Plaintext: []byte("under the default key"), EncryptionContext: map[string]string{"app": "x"}})
	if err != nil {
		t.Fatalf("encrypt under default in zone-b: %v", err)
	}
	if enc.KeyID != id {
		t.Fatalf("encrypt under default in zone-b used %s, want %s", enc.KeyID, id)
	}
	dec, err := tokenClient(t, c, cu.Secret).Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: map[string]string{"app": "x"}})
	if err != nil || string(dec.Plaintext) != "under the default key" || dec.KeyID != id {
		t.Fatalf("decrypt in zone-c: %q from %s, %v", dec.Plaintext, dec.KeyID, err)
	}
	if dec, err := tokenClient(t, c, cu.Secret).DecryptWithKey(ctx, "default", wire.DecryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: map[string]string{"app": "x"}}); err != nil || dec.KeyID != id {
		t.Fatalf("decrypt naming default in zone-c: %v", err)
	}
	// Re-encrypt to "default" from another key.
	other, err := tokenClient(t, a, a.Token).CreateKey(ctx, wire.CreateKeyRequest{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	enc2, err := tokenClient(t, a, a.Token).Encrypt(ctx, other.ID, wire.EncryptRequest{Plaintext: []byte("moved")})
	if err != nil {
		t.Fatal(err)
	}
	re, err := tokenClient(t, a, cu.Secret).ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: enc2.Ciphertext, DestinationKeyID: "default"})
	if err != nil || re.KeyID != id {
		t.Fatalf("re-encrypt to default: %s, %v", re.KeyID, err)
	}

	// The rules hold in the home zone and through a replica zone (the
	// change is forwarded to zone-a, whose answer is relayed).
	for _, z := range []*clustertest.Cluster{a, b} {
		cl := tokenClient(t, z, z.Token)
		for _, ref := range []string{"default", id} {
			_, err := cl.ScheduleDeletion(ctx, ref, 7*24*time.Hour)
			wantRefused(t, "schedule the deletion of "+ref+" through "+z.Zone(), err, http.StatusConflict, wire.CodeDefaultKey)
			_, err = cl.DisableKey(ctx, ref)
			wantRefused(t, "disable "+ref+" through "+z.Zone(), err, http.StatusConflict, wire.CodeDefaultKey)
			_, err = cl.UnprotectKey(ctx, ref)
			wantRefused(t, "unprotect "+ref+" through "+z.Zone(), err, http.StatusConflict, wire.CodeDefaultKey)
			_, err = cl.UpdateKey(ctx, ref, wire.UpdateKeyRequest{RotationPolicy: &wire.RotationPolicySpec{RotationPeriod: ""}})
			wantRefused(t, "turn off the rotation of "+ref+" through "+z.Zone(), err, http.StatusConflict, wire.CodeDefaultKey)
			_, err = cl.RemoveReplica(ctx, ref, "zone-c")
			wantRefused(t, "remove zone-c from "+ref+" through "+z.Zone(), err, http.StatusConflict, wire.CodeDefaultKey)
		}
	}
	// Allowed changes still work on it: a rotation, a description.
	rot, err := tokenClient(t, b, b.Token).RotateKey(ctx, "default")
	if err != nil {
		t.Fatalf("rotate the default key through zone-b: %v", err)
	}
	if max(rot.CurrentVersion, rot.PendingVersion) != 2 {
		t.Fatalf("rotate the default key: %+v", rot)
	}
	waitConverged(t, zones, a, id)
	for _, z := range zones {
		k, ok := z.Nodes[0].Server().FSM().Key(id)
		if !ok || k.State != "enabled" || !k.Protected || len(k.Versions) != 2 {
			t.Errorf("the default key in %s after the refusals: %+v", z.Zone(), k)
		}
	}
}

// TestMultiZone_ReplicaSetThroughReplicaZone: adding or removing a replica
// zone is a lifecycle change like any other: sent to a node of a replica
// zone, it is forwarded to the primary zone. The default key refuses to
// lose a replica zone there too.
func TestMultiZone_ReplicaSetThroughReplicaZone(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 3)
	ctx := testCtx(t, 60*time.Second)
	a, b := zones[0], zones[1]
	k, err := tokenClient(t, a, a.Token).CreateKey(ctx, wire.CreateKeyRequest{Name: "via-replica", ReplicaZones: []string{"zone-b", "zone-c"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	clB := tokenClient(t, b, b.Token)
	got, err := clB.RemoveReplica(ctx, k.ID, "zone-c")
	if err != nil || !slices.Equal(got.ReplicaZones, []string{"zone-b"}) {
		t.Fatalf("remove zone-c through zone-b: %+v, %v", got.ReplicaZones, err)
	}
	waitConverged(t, zones, a, k.ID)
	got, err = clB.AddReplica(ctx, k.ID, "zone-c")
	if err != nil || !slices.Equal(got.ReplicaZones, []string{"zone-b", "zone-c"}) {
		t.Fatalf("add zone-c back through zone-b: %+v, %v", got.ReplicaZones, err)
	}
	waitConverged(t, zones, a, k.ID)
	for _, ref := range []string{"default", a.Org.DefaultKeyID} {
		_, err = clB.RemoveReplica(ctx, ref, "zone-c")
		wantRefused(t, "remove zone-c from the default key through zone-b", err, http.StatusConflict, wire.CodeDefaultKey)
	}
}

// TestTenancy_Quota: an organization with a key quota of 2 gets 409
// quota_exceeded on its third key in a zone. The quota is per zone and
// counts primaries only: the replicas of its keys in another zone, and
// its default key, leave that zone's quota whole. Another organization
// is not affected.
func TestTenancy_Quota(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 2)
	ctx := testCtx(t, 90*time.Second)
	a, b := zones[0], zones[1]
	op := tokenClient(t, a, a.OperatorToken)
	q, err := op.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "quota", KeyQuota: 2})
	if err != nil {
		t.Fatal(err)
	}
	if q.KeyQuota != 2 {
		t.Fatalf("created with key_quota 2: %+v", q)
	}
	tok := newToken(t, ctx, zones, op, q.ID, wire.CreateTokenRequest{Role: "key-admin"})
	inA, inB := tokenClient(t, a, tok.Secret), tokenClient(t, b, tok.Secret)

	// Two keys in zone-a, both replicated to zone-b.
	var ids []string
	for i := range 2 {
		k, err := inA.CreateKey(ctx, wire.CreateKeyRequest{Name: fmt.Sprintf("a-%d", i), ReplicaZones: []string{"zone-b"}})
		if err != nil {
			t.Fatalf("key %d of 2 in zone-a: %v", i+1, err)
		}
		ids = append(ids, k.ID)
	}
	_, err = inA.CreateKey(ctx, wire.CreateKeyRequest{Name: "a-2"})
	wantRefused(t, "the third key in zone-a", err, http.StatusConflict, wire.CodeQuotaExceeded)
	if apiErr, ok := errors.AsType[*client.Error](err); ok && !strings.Contains(apiErr.Message, "quota") {
		t.Errorf("the refusal does not say why: %q", apiErr.Message)
	}
	for _, id := range ids {
		waitConverged(t, zones, a, id)
	}
	if n := b.Nodes[0].Server().FSM().PrimaryKeyCount(q.ID); n != 0 {
		t.Errorf("zone-b counts %d keys of the organization with only replicas and the default key there, want 0", n)
	}
	// zone-b holds the two replicas and the default key's, yet takes two
	// keys of its own.
	list, err := inB.ListKeys(ctx, client.ListKeysOptions{})
	if err != nil || len(list.Keys) != 3 {
		t.Fatalf("zone-b lists %d keys of the organization (%v), want its 2 replicas and the default key", len(list.Keys), err)
	}
	for i := range 2 {
		if _, err := inB.CreateKey(ctx, wire.CreateKeyRequest{Name: fmt.Sprintf("b-%d", i)}); err != nil {
			t.Fatalf("key %d of 2 in zone-b, which holds only replicas: %v", i+1, err)
		}
	}
	_, err = inB.CreateKey(ctx, wire.CreateKeyRequest{Name: "b-2"})
	wantRefused(t, "the third key in zone-b", err, http.StatusConflict, wire.CodeQuotaExceeded)
	// Another organization is not affected.
	if _, err := tokenClient(t, a, a.Token).CreateKey(ctx, wire.CreateKeyRequest{Name: "not-limited"}); err != nil {
		t.Fatalf("the test organization in full zone-a: %v", err)
	}
	// A raised quota takes effect in every zone.
	if _, err := op.UpdateOrganization(ctx, q.ID, wire.UpdateOrganizationRequest{KeyQuota: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the raised quota to reach zone-b", func() bool {
		o, ok := b.Nodes[0].Server().FSM().Organization(q.ID)
		return ok && o.KeyQuota == 3
	})
	for _, cl := range []*client.Client{inA, inB} {
		if _, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "third"}); err != nil {
			t.Fatalf("a third key under the raised quota: %v", err)
		}
		_, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "fourth"})
		wantRefused(t, "a fourth key under a quota of 3", err, http.StatusConflict, wire.CodeQuotaExceeded)
	}
}

// TestTenancy_RateLimit: an organization limited to 2 requests/s with a
// burst of 2 gets 429 rate_limited with Retry-After when it sends more,
// on each node on its own budget; another organization on the same node
// is unaffected, and the limited one is served again once it waited.
func TestTenancy_RateLimit(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 2)
	ctx := testCtx(t, 90*time.Second)
	a, b := zones[0], zones[1]
	op := tokenClient(t, a, a.OperatorToken)
	r, err := op.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "limited", RateLimit: 2, RateBurst: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.RateLimit != 2 || r.RateBurst != 2 {
		t.Fatalf("created with rate limit 2/s burst 2: %+v", r)
	}
	tok := newToken(t, ctx, zones, op, r.ID, wire.CreateTokenRequest{Role: "org-admin"})
	limited := tokenClient(t, a, tok.Secret)

	// Twenty calls at once: the bucket holds 2 and refills at 2/s, so at
	// most 2 + 2/s of the time they take are served, the rest refused.
	const calls = 20
	errs := make(chan error, calls)
	burstStart := time.Now()
	for range calls {
		go func() {
			_, err := limited.ListKeys(ctx, client.ListKeysOptions{})
			errs <- err
		}()
	}
	served, refused := 0, 0
	var retryAfter time.Duration
	for range calls {
		err := <-errs
		if err == nil {
			served++
			continue
		}
		apiErr, ok := errors.AsType[*client.Error](err)
		if !ok || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != wire.CodeRateLimited {
			t.Fatalf("a call over the limit: got %v, want 429 rate_limited", err)
		}
		if apiErr.RetryAfter < time.Second {
			t.Errorf("429 with Retry-After %s, want whole seconds, at least 1", apiErr.RetryAfter)
		}
		retryAfter = max(retryAfter, apiErr.RetryAfter)
		refused++
	}
	took := time.Since(burstStart)
	t.Logf("%d calls at once: %d served, %d refused with Retry-After up to %s, in %s", calls, served, refused, retryAfter, took.Round(time.Millisecond))
	if most := 2 + int(2*took.Seconds()); served > most || refused == 0 {
		t.Fatalf("%d served and %d refused of %d calls in %s, want at most %d served and the rest refused", served, refused, calls, took, most)
	}
	// The raw answer carries the header.
	req, _ := http.NewRequestWithContext(ctx, "GET", a.Nodes[0].Addr()+"/v1/keys", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Secret)
	var resp *http.Response
	clustertest.WaitFor(t, 10*time.Second, "a 429 answer", func() bool {
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusTooManyRequests
	})
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("429 with Retry-After %q", ra)
	}

	// The test organization on the same node, meanwhile, and the limited
	// organization on another node, whose budget is its own.
	other := tokenClient(t, a, a.Token)
	for i := range 20 {
		if _, err := other.ListKeys(ctx, client.ListKeysOptions{}); err != nil {
			t.Fatalf("another organization's call %d on the same node: %v", i, err)
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "the limited organization served on zone-b's node", func() bool {
		_, err := tokenClient(t, b, tok.Secret).ListKeys(ctx, client.ListKeysOptions{})
		return err == nil
	})
	// The operator is not limited.
	for range 10 {
		if _, err := op.ListOrganizations(ctx); err != nil {
			t.Fatalf("the operator: %v", err)
		}
	}
	// Waiting as told is enough.
	time.Sleep(retryAfter)
	if _, err := limited.ListKeys(ctx, client.ListKeysOptions{}); err != nil {
		t.Fatalf("after waiting Retry-After: %v", err)
	}
}

// auditedCall sends one request with the caller's X-Request-Id and
// returns the status and body.
func auditedCall(t *testing.T, addr, method, path, token, requestID, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Request-Id", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Request-Id"); got != requestID {
		t.Fatalf("%s %s: X-Request-Id %q, want the caller's %q", method, path, got, requestID)
	}
	return resp.StatusCode, b
}

// TestTenancy_AuditRecords runs a sequence of calls against a node whose
// audit sink is a JSON file and finds exactly one line per call (matched
// by the X-Request-Id sent), saying who called (organization, token id,
// role), what (operation, key id and version) and how it ended; and no
// line holds a plaintext, a ciphertext, a token secret, the operator
// token or the root key.
func TestTenancy_AuditRecords(t *testing.T) {
	t.Parallel()
	raw := randomBytes(t, 32)
	rek, err := kzcrypto.NewREK(raw)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // after the node has stopped
	z := clustertest.New(t, 1, clustertest.Options{Zone: "audit-z", REK: rek, NoOrganization: true,
		Server: func(c *server.Config) { c.Audit = audit.NewJSONSink(f) }})
	addr, opTok := z.Nodes[0].Addr(), z.OperatorToken
	plaintext := "audit-plaintext-" + hex.EncodeToString(randomBytes(t, 8))
	std := base64.StdEncoding.EncodeToString

	type expect struct {
		id, method, route, operation string
		status                       int
		outcome, code                string
		org, tokenID, role           string
		keyID                        string
		keyVersion                   float64
	}
	var want []expect
	n := 0
	call := func(method, path, token, body string, status int) []byte {
		t.Helper()
		n++
		id := fmt.Sprintf("audit-%02d", n)
		got, b := auditedCall(t, addr, method, path, token, id, body)
		if got != status {
			t.Fatalf("%s %s: got %d %s, want %d", method, path, got, b, status)
		}
		return b
	}
	decode := func(b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	next := func(e expect) { e.id = fmt.Sprintf("audit-%02d", n); want = append(want, e) }

	var o wire.Organization
	decode(call("POST", "/v1/orgs", opTok, `{"name":"audited"}`, 201), &o)
	// The record names the organization created.
	next(expect{method: "POST", route: "/v1/orgs", operation: "create-organization", status: 201, outcome: "success", org: o.ID, role: "operator"})
	var admin wire.CreatedToken
	decode(call("POST", "/v1/orgs/"+o.ID+"/tokens", opTok, `{"role":"org-admin"}`, 201), &admin)
	next(expect{method: "POST", route: "/v1/orgs/:org/tokens", operation: "create-token", status: 201, outcome: "success", org: o.ID, role: "operator"})
	var k wire.Key
	decode(call("POST", "/v1/keys", admin.Secret, `{"name":"audited","description":"not for the audit log"}`, 201), &k)
	next(expect{method: "POST", route: "/v1/keys", operation: "create-key", status: 201, outcome: "success",
		org: o.ID, tokenID: admin.ID, role: "org-admin", keyID: k.ID, keyVersion: 1})
	var cu wire.CreatedToken
	decode(call("POST", "/v1/orgs/"+o.ID+"/tokens", admin.Secret, `{"role":"crypto-user"}`, 201), &cu)
	next(expect{method: "POST", route: "/v1/orgs/:org/tokens", operation: "create-token", status: 201, outcome: "success",
		org: o.ID, tokenID: admin.ID, role: "org-admin"})
	var enc1 wire.EncryptResponse
	decode(call("POST", "/v1/keys/"+k.ID+"/encrypt", cu.Secret, `{"plaintext":"`+std([]byte(plaintext))+`"}`, 200), &enc1)
	next(expect{method: "POST", route: "/v1/keys/:id/encrypt", operation: "encrypt", status: 200, outcome: "success",
		org: o.ID, tokenID: cu.ID, role: "crypto-user", keyID: k.ID, keyVersion: 1})
	call("POST", "/v1/decrypt", cu.Secret, `{"ciphertext":"`+std(enc1.Ciphertext)+`"}`, 200)
	next(expect{method: "POST", route: "/v1/decrypt", operation: "decrypt", status: 200, outcome: "success",
		org: o.ID, tokenID: cu.ID, role: "crypto-user", keyID: k.ID, keyVersion: 1})
	call("POST", "/v1/keys/"+k.ID+"/rotate", admin.Secret, "", 200)
	next(expect{method: "POST", route: "/v1/keys/:id/rotate", operation: "rotate-key", status: 200, outcome: "success",
		org: o.ID, tokenID: admin.ID, role: "org-admin", keyID: k.ID, keyVersion: 2})
	var enc2 wire.EncryptResponse
	decode(call("POST", "/v1/keys/"+k.ID+"/encrypt", cu.Secret, `{"plaintext":"`+std([]byte(plaintext))+`"}`, 200), &enc2)
	next(expect{method: "POST", route: "/v1/keys/:id/encrypt", operation: "encrypt", status: 200, outcome: "success",
		org: o.ID, tokenID: cu.ID, role: "crypto-user", keyID: k.ID, keyVersion: 2})
	call("POST", "/v1/keys/default/encrypt", cu.Secret, `{"plaintext":"`+std([]byte(plaintext))+`"}`, 200)
	next(expect{method: "POST", route: "/v1/keys/:id/encrypt", operation: "encrypt", status: 200, outcome: "success",
		org: o.ID, tokenID: cu.ID, role: "crypto-user", keyID: o.DefaultKeyID, keyVersion: 1})
	wrong := "kzt_" + admin.ID + "_" + strings.Repeat("B", 43)
	call("GET", "/v1/keys", wrong, "", 401)
	next(expect{method: "GET", route: "/v1/keys", operation: "list-keys", status: 401, outcome: "denied", code: "unauthorized"})
	call("POST", "/v1/keys/"+k.ID+"/rotate", cu.Secret, "", 403)
	next(expect{method: "POST", route: "/v1/keys/:id/rotate", operation: "rotate-key", status: 403, outcome: "denied", code: "forbidden",
		org: o.ID, tokenID: cu.ID, role: "crypto-user", keyID: k.ID})
	call("GET", "/v1/keys/"+missingKeyID, admin.Secret, "", 404)
	next(expect{method: "GET", route: "/v1/keys/:id", operation: "get-key", status: 404, outcome: "refused", code: "key_not_found",
		org: o.ID, tokenID: admin.ID, role: "org-admin", keyID: missingKeyID})
	call("POST", "/v1/decrypt", cu.Secret, `{"ciphertext":"`+std(enc2.Ciphertext[:40])+`"}`, 422)
	next(expect{method: "POST", route: "/v1/decrypt", operation: "decrypt", status: 422, outcome: "refused", code: "decrypt_failed",
		org: o.ID, tokenID: cu.ID, role: "crypto-user"})
	call("GET", "/v1/keys", opTok, "", 403)
	next(expect{method: "GET", route: "/v1/keys", operation: "list-keys", status: 403, outcome: "denied", code: "forbidden", role: "operator"})
	call("DELETE", "/v1/orgs/"+o.ID+"/tokens/"+cu.ID, admin.Secret, "", 200)
	next(expect{method: "DELETE", route: "/v1/orgs/:org/tokens/:token", operation: "revoke-token", status: 200, outcome: "success",
		org: o.ID, tokenID: admin.ID, role: "org-admin"})
	call("POST", "/v1/keys/"+k.ID+"/encrypt", cu.Secret, `{"plaintext":"`+std([]byte(plaintext))+`"}`, 401)
	next(expect{method: "POST", route: "/v1/keys/:id/encrypt", operation: "encrypt", status: 401, outcome: "denied", code: "unauthorized",
		keyID: k.ID})

	// Every call's record, once it is written (after the answer).
	var lines []map[string]any
	clustertest.WaitFor(t, 10*time.Second, "a record of every call", func() bool {
		lines = readAudit(t, path)
		return len(lines) >= len(want)
	})
	if len(lines) != len(want) {
		t.Errorf("%d audit lines for %d calls", len(lines), len(want))
	}
	byID := map[string][]map[string]any{}
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		byID[id] = append(byID[id], l)
	}
	for _, w := range want {
		got := byID[w.id]
		if len(got) != 1 {
			t.Errorf("%s (%s %s): %d audit lines, want 1", w.id, w.method, w.route, len(got))
			continue
		}
		l := got[0]
		str := func(k string) string { s, _ := l[k].(string); return s }
		num := func(k string) float64 { v, _ := l[k].(float64); return v }
		if str("method") != w.method || str("route") != w.route || str("operation") != w.operation || num("status") != float64(w.status) ||
			str("outcome") != w.outcome || str("code") != w.code {
			t.Errorf("%s: got %s %s %s %v %s %s, want %s %s %s %d %s %s", w.id, str("method"), str("route"), str("operation"), l["status"],
				str("outcome"), str("code"), w.method, w.route, w.operation, w.status, w.outcome, w.code)
		}
		if str("organization") != w.org || str("token_id") != w.tokenID || str("role") != w.role {
			t.Errorf("%s (%s): caller %q %q %q, want %q %q %q", w.id, w.operation, str("organization"), str("token_id"), str("role"), w.org, w.tokenID, w.role)
		}
		if str("key_id") != w.keyID || num("key_version") != w.keyVersion {
			t.Errorf("%s (%s): key %q v%v, want %q v%v", w.id, w.operation, str("key_id"), num("key_version"), w.keyID, w.keyVersion)
		}
		if str("node") != z.Nodes[0].ID || str("zone") != "audit-z" || str("source") != "127.0.0.1" {
			t.Errorf("%s: node %q zone %q source %q", w.id, str("node"), str("zone"), str("source"))
		}
		if _, err := time.Parse(time.RFC3339Nano, str("time")); err != nil {
			t.Errorf("%s: time: %v", w.id, err)
		}
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sec := newSecrets()
	sec.add("plaintext", []byte(plaintext))
	sec.add("ciphertext", enc1.Ciphertext)
	sec.add("ciphertext", enc2.Ciphertext)
	sec.add("root key", raw)
	for what, secret := range map[string]string{"org-admin secret": admin.Secret, "crypto-user secret": cu.Secret,
		"operator token": opTok, "wrong token": wrong, "peer token": rek.PeerToken()} {
		sec.needles[secret] = what
	}
	sec.needles["not for the audit log"] = "key description"
	for _, s := range []string{admin.Secret, cu.Secret} {
		// The random part alone, too: the token id may be logged.
		sec.needles[s[len("kzt_")+len(admin.ID)+1:]] = "token secret's random part"
	}
	if what := sec.find(string(b)); what != "" {
		t.Errorf("the audit log holds the %s", what)
	}
}

// TestTenancy_HomeZoneDown stops the home zone: tokens keep
// authenticating and crypto keeps working in the other zones from their
// own state, while changes to organizations and tokens there answer 503
// with Retry-After; once the home zone is back, they work again.
func TestTenancy_HomeZoneDown(t *testing.T) {
	t.Parallel()
	zones := tenancyZones(t, 3)
	ctx := testCtx(t, 120*time.Second)
	a, b, c := zones[0], zones[1], zones[2]
	org := a.Org.ID
	cu := newToken(t, ctx, zones, tokenClient(t, a, a.Token), org, wire.CreateTokenRequest{Role: "crypto-user"})
	k, err := tokenClient(t, a, a.Token).CreateKey(ctx, wire.CreateKeyRequest{Name: "while-home-away", ReplicaZones: []string{"zone-b", "zone-c"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)

	a.Shutdown()
	start := time.Now()
	for _, z := range []*clustertest.Cluster{b, c} {
		for _, secret := range []string{z.Token, cu.Secret} {
			if who, err := tokenClient(t, z, secret).WhoAmI(ctx); err != nil || who.Organization != org {
				t.Fatalf("a token in %s with the home zone down: %+v, %v", z.Zone(), who, err)
			}
		}
		if _, err := tokenClient(t, z, z.OperatorToken).ListOrganizations(ctx); err != nil {
			t.Errorf("the operator lists organizations in %s with the home zone down: %v", z.Zone(), err)
		}
	}
	for _, key := range []string{"default", k.ID} {
		enc, err := tokenClient(t, b, cu.Secret).Encrypt(ctx, key, wire.EncryptRequest{Plaintext: []byte("home away")})
		if err != nil {
			t.Fatalf("encrypt under %s in zone-b with the home zone down: %v", key, err)
		}
		dec, err := tokenClient(t, c, cu.Secret).Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
		if err != nil || string(dec.Plaintext) != "home away" {
			t.Fatalf("decrypt in zone-c with the home zone down: %q, %v", dec.Plaintext, err)
		}
	}
	unavailable := func(what string, err error) {
		t.Helper()
		wantRefused(t, what, err, http.StatusServiceUnavailable, wire.CodeUnavailable)
		if apiErr, ok := errors.AsType[*client.Error](err); ok && apiErr.RetryAfter < time.Second {
			t.Errorf("%s: 503 without Retry-After", what)
		}
	}
	adminB := tokenClient(t, b, b.Token)
	_, err = adminB.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "auditor"})
	unavailable("create a token in zone-b with the home zone down", err)
	if apiErr, ok := errors.AsType[*client.Error](err); ok && !strings.Contains(apiErr.Message, "zone-a") {
		t.Errorf("the refusal does not name the home zone: %q", apiErr.Message)
	}
	_, err = tokenClient(t, c, c.Token).RevokeToken(ctx, org, cu.ID)
	unavailable("revoke a token in zone-c with the home zone down", err)
	_, err = tokenClient(t, b, b.OperatorToken).CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "while-away"})
	unavailable("create an organization in zone-b with the home zone down", err)
	_, err = tokenClient(t, b, b.OperatorToken).UpdateOrganization(ctx, org, wire.UpdateOrganizationRequest{KeyQuota: ptr(7)})
	unavailable("change an organization in zone-b with the home zone down", err)
	// The refused revocation changed nothing: the token still works.
	if _, err := tokenClient(t, c, cu.Secret).WhoAmI(ctx); err != nil {
		t.Fatalf("the token whose revocation was refused: %v", err)
	}
	t.Logf("home zone down: tokens, crypto and refusals checked in %s", time.Since(start).Round(time.Millisecond))

	for _, n := range a.Nodes {
		a.Restart(n)
	}
	a.WaitReady(30 * time.Second)
	var tok wire.CreatedToken
	clustertest.WaitFor(t, 30*time.Second, "token creation through zone-b once the home zone is back", func() bool {
		tok, err = adminB.CreateToken(ctx, org, wire.CreateTokenRequest{Role: "auditor", Description: "after the home zone came back"})
		if apiErr, ok := errors.AsType[*client.Error](err); ok && apiErr.StatusCode == http.StatusServiceUnavailable {
			return false
		}
		if err != nil {
			t.Fatalf("create a token through zone-b after the home zone came back: %v", err)
		}
		return true
	})
	for _, z := range zones {
		z.WaitToken(tok.Secret, 30*time.Second)
	}
	if _, err := tokenClient(t, c, c.Token).RevokeToken(ctx, org, cu.ID); err != nil {
		t.Fatalf("revoke through zone-c after the home zone came back: %v", err)
	}
	waitRefusedEverywhere(t, zones, cu.Secret, time.Now(), 10*time.Second)
}

// TestTenancy_RestartedNodeKeepsValidTokens: a node that restarts knows
// its tokens only once it has replayed its log, which takes a word from
// its leader. Until then it may ask the caller to retry (503), but it
// never answers 401 to a valid token: that answer tells a client its
// token is bad, not to retry. The e2e nemesis sees hundreds of such 401s
// during its rolling restarts. Here: a node of a zone whose other nodes
// are down comes back alone, then the others, and a valid token is tried
// on it throughout.
func TestTenancy_RestartedNodeKeepsValidTokens(t *testing.T) {
	// A restarted node's state lacks every token until its log is
	// replayed: like a key lookup, an unknown token first waits (bounded)
	// for the node to catch up with its leader, and is answered 503 when
	// it can't, never 401.
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	createKeys(t, ctx, c.Leader(), 10)
	c.Shutdown()
	f := c.Nodes[0]
	c.Restart(f)
	cl, err := client.New(f.Addr(), c.Token, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]int{}
	try := func() bool {
		_, err := cl.WhoAmI(ctx)
		if err == nil {
			answers["ok"]++
			return true
		}
		answers[err.Error()]++
		if apiErr, isAPI := errors.AsType[*client.Error](err); isAPI && apiErr.StatusCode == http.StatusUnauthorized {
			t.Fatalf("a valid token got %v from %s, restarted with its zone down", err, f.ID)
		}
		return false
	}
	for range 5 {
		try()
	}
	for _, n := range c.Nodes[1:] {
		c.Restart(n)
	}
	clustertest.WaitFor(t, 30*time.Second, "the token served by "+f.ID, try)
	t.Logf("%s: %v", f.ID, answers)
}
