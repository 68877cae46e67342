package keys_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// settableClock is a clock a test moves forward.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestTenancy_OrganizationAndDefaultKey(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{NoOrganization: true})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)

	o, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "acme" || o.KeyQuota != fsm.DefaultKeyQuota || o.HomeZone != c.Zone() || o.DefaultKeyID == "" {
		t.Fatalf("organization: %+v", o)
	}
	k, err := s.GetKey(ctx, o.ID, o.DefaultKeyID, false)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Default || !k.Protected || k.State != fsm.KeyStateEnabled ||
		time.Duration(k.RotationPolicy.Period) != keys.DefaultKeyRotation {
		t.Fatalf("default key: %+v", k)
	}
	// The default key refuses what would end its life or its rotation.
	for name, call := range map[string]func() error{
		"disable":   func() error { _, err := s.DisableKey(ctx, keys.KeyRef{Organization: o.ID, KeyID: k.ID}); return err },
		"unprotect": func() error { _, err := s.UnprotectKey(ctx, keys.KeyRef{Organization: o.ID, KeyID: k.ID}); return err },
		"schedule-deletion": func() error {
			_, err := s.ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: keys.KeyRef{Organization: o.ID, KeyID: k.ID}})
			return err
		},
		"rotation off": func() error {
			off := time.Duration(0)
			_, err := s.UpdateKey(ctx, keys.UpdateParams{KeyRef: keys.KeyRef{Organization: o.ID, KeyID: k.ID}, RotationPeriod: &off})
			return err
		},
	} {
		if err := call(); !errors.Is(err, fsm.ErrDefaultKey) {
			t.Errorf("%s of the default key: got %v, want ErrDefaultKey", name, err)
		}
	}
	if _, err := s.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: o.ID, KeyID: k.ID}}); err != nil {
		t.Errorf("manual rotation of the default key: %v", err)
	}

	if _, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "acme"}); !errors.Is(err, fsm.ErrOrganizationExists) {
		t.Errorf("second acme: got %v, want ErrOrganizationExists", err)
	}
	for _, bad := range []string{"", "Acme", "-acme", "a b", strings.Repeat("a", fsm.MaxOrganizationName+1)} {
		if _, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: bad}); !errors.Is(err, keys.ErrInvalidArgument) {
			t.Errorf("name %q: got %v, want ErrInvalidArgument", bad, err)
		}
	}
	got, err := s.Organization(ctx, "acme")
	if err != nil || got.ID != o.ID {
		t.Errorf("organization by name: %v %v", got, err)
	}
}

func TestTenancy_TokensAuthenticate(t *testing.T) {
	clock := &settableClock{now: time.Now()}
	c := clustertest.New(t, 1, clustertest.Options{NoOrganization: true, Keys: keys.Config{Now: clock.Now}})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	acme, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}

	nt, err := s.CreateToken(ctx, keys.CreateTokenParams{Organization: acme.ID, Role: fsm.RoleCryptoUser, KeyIDs: []string{"default"}, ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nt.Secret, "kzt_"+nt.Token.ID+"_") || len(nt.Token.SecretHash) != 32 {
		t.Fatalf("token %+v secret %q", nt.Token, nt.Secret)
	}
	if len(nt.Token.KeyIDs) != 1 || nt.Token.KeyIDs[0] != acme.DefaultKeyID {
		t.Errorf("\"default\" in key ids: got %v, want [%s]", nt.Token.KeyIDs, acme.DefaultKeyID)
	}
	tok, o, err := s.Authenticate(ctx, nt.Secret)
	if err != nil || tok.ID != nt.Token.ID || o.ID != acme.ID {
		t.Fatalf("authenticate: %v %v %v", tok, o, err)
	}
	// The secret is stored nowhere: the state holds its hash only.
	for _, st := range c.Nodes[0].Server().FSM().Tokens(acme.ID) {
		if strings.Contains(string(st.SecretHash), nt.Secret) {
			t.Fatal("secret in the state")
		}
	}

	// Every wrong secret is the same error.
	wrong := []string{
		"", "kzt_", nt.Secret + "x", changeChar(nt.Secret, len(nt.Secret)-5),
		strings.Replace(nt.Secret, nt.Token.ID, "0000000000000000", 1), "Bearer " + nt.Secret,
	}
	for _, w := range wrong {
		if _, _, err := s.Authenticate(ctx, w); !errors.Is(err, keys.ErrUnauthenticated) || err.Error() != keys.ErrUnauthenticated.Error() {
			t.Errorf("secret %q: got %v", w, err)
		}
	}

	// Expiry by the node's clock.
	clock.Add(time.Hour)
	if _, _, err := s.Authenticate(ctx, nt.Secret); !errors.Is(err, keys.ErrUnauthenticated) {
		t.Errorf("expired token: got %v", err)
	}

	admin, err := s.CreateToken(ctx, keys.CreateTokenParams{Organization: acme.ID, Role: fsm.RoleOrgAdmin})
	if err != nil {
		t.Fatal(err)
	}
	// Another organization can't revoke it; its own can, twice.
	if _, err := s.RevokeToken(ctx, other.ID, admin.Token.ID); !errors.Is(err, fsm.ErrTokenNotFound) {
		t.Errorf("revoke through another organization: got %v, want ErrTokenNotFound", err)
	}
	if _, _, err := s.Authenticate(ctx, admin.Secret); err != nil {
		t.Fatalf("token revoked through another organization: %v", err)
	}
	for range 2 {
		r, err := s.RevokeToken(ctx, acme.ID, admin.Token.ID)
		if err != nil || !r.Revoked() {
			t.Fatalf("revoke: %v %v", r, err)
		}
	}
	if _, _, err := s.Authenticate(ctx, admin.Secret); !errors.Is(err, keys.ErrUnauthenticated) {
		t.Errorf("revoked token: got %v", err)
	}

	// Refusals.
	for name, p := range map[string]keys.CreateTokenParams{
		"bad role":             {Organization: acme.ID, Role: "root"},
		"restricted org-admin": {Organization: acme.ID, Role: fsm.RoleOrgAdmin, Tags: []string{"x"}},
		"bad key id":           {Organization: acme.ID, Role: fsm.RoleCryptoUser, KeyIDs: []string{"nope"}},
		"negative expiry":      {Organization: acme.ID, Role: fsm.RoleAuditor, ExpiresIn: -time.Second},
	} {
		if _, err := s.CreateToken(ctx, p); !errors.Is(err, keys.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := s.CreateToken(ctx, keys.CreateTokenParams{Organization: "nope", Role: fsm.RoleAuditor}); !errors.Is(err, fsm.ErrOrganizationNotFound) {
		t.Errorf("unknown organization: got %v", err)
	}
}

func TestTenancy_RestrictedCryptoUser(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{NoOrganization: true})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	o, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := s.CreateKey(ctx, keys.CreateParams{Organization: o.ID, Name: "tagged", Tags: []string{"payments"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.CreateKey(ctx, keys.CreateParams{Organization: o.ID, Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	nt, err := s.CreateToken(ctx, keys.CreateTokenParams{Organization: o.ID, Role: fsm.RoleCryptoUser, Tags: []string{"payments"}})
	if err != nil {
		t.Fatal(err)
	}
	allow := keys.TokenFilter(nt.Token)
	if _, err := s.Encrypt(ctx, keys.EncryptParams{Organization: o.ID, Allow: allow, KeyID: tagged.ID, Plaintext: []byte("ok")}); err != nil {
		t.Fatalf("tagged key: %v", err)
	}
	if _, err := s.Encrypt(ctx, keys.EncryptParams{Organization: o.ID, Allow: allow, KeyID: plain.ID, Plaintext: []byte("no")}); !errors.Is(err, keys.ErrKeyNotAllowed) {
		t.Errorf("untagged key: got %v, want ErrKeyNotAllowed", err)
	}
	ct, err := s.Encrypt(ctx, keys.EncryptParams{Organization: o.ID, KeyID: plain.ID, Plaintext: []byte("no")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decrypt(ctx, keys.DecryptParams{Organization: o.ID, Allow: allow, Ciphertext: ct.Ciphertext}); !errors.Is(err, keys.ErrKeyNotAllowed) {
		t.Errorf("decrypt under the untagged key: got %v, want ErrKeyNotAllowed", err)
	}
	if _, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: o.ID, Allow: allow, Ciphertext: ct.Ciphertext, DestinationKeyID: tagged.ID}); !errors.Is(err, keys.ErrKeyNotAllowed) {
		t.Errorf("re-encrypt from the untagged key: got %v, want ErrKeyNotAllowed", err)
	}
	if keys.TokenFilter(&fsm.Token{Role: fsm.RoleCryptoUser}) != nil {
		t.Error("an unrestricted token has a filter")
	}
}

func TestTenancy_Quota(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{NoOrganization: true})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	o, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "small", KeyQuota: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.CreateKey(ctx, keys.CreateParams{Organization: o.ID, Name: "k"}); err != nil {
			t.Fatalf("key %d under the quota: %v", i, err)
		}
	}
	if _, err := s.CreateKey(ctx, keys.CreateParams{Organization: o.ID, Name: "k"}); !errors.Is(err, fsm.ErrQuotaExceeded) {
		t.Fatalf("key over the quota: got %v, want ErrQuotaExceeded", err)
	}
	three := 3
	if _, err := s.UpdateOrganization(ctx, keys.UpdateOrganizationParams{Organization: o.ID, KeyQuota: &three}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateKey(ctx, keys.CreateParams{Organization: o.ID, Name: "k"}); err != nil {
		t.Fatalf("key under the raised quota: %v", err)
	}
}

func TestTenancy_HomeZoneOnly(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{NoOrganization: true, HomeZone: "zone-elsewhere"})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	if _, err := s.CreateOrganization(ctx, keys.CreateOrganizationParams{Name: "acme"}); !errors.Is(err, keys.ErrNotHomeZone) {
		t.Errorf("create organization outside the home zone: got %v, want ErrNotHomeZone", err)
	}
	if _, err := s.RevokeToken(ctx, "o", "t"); !errors.Is(err, keys.ErrNotHomeZone) {
		t.Errorf("revoke outside the home zone: got %v, want ErrNotHomeZone", err)
	}
}

// changeChar returns s with its i-th character replaced by another
// base64url character (never the same one).
func changeChar(s string, i int) string {
	c := byte('A')
	if s[i] == c {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}
