package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	orgT = "org-t" // organizations with a record, created by the tests
	orgU = "org-u"
)

// newOrg is a valid CreateOrganizationV1 of zone-1 whose default key is
// "dk-<id>", replicated to replicas.
func newOrg(id, name string, quota int, replicas ...string) CreateOrganizationV1 {
	dk := withPolicy(createKey("dk-"+id, id), 90*day, t0+90*day)
	dk.ReplicaZones = replicas
	return CreateOrganizationV1{
		Organization: Organization{ID: id, Name: name, HomeZone: "zone-1", KeyQuota: quota, RateLimit: 50, RateBurst: 100, CreatedAt: t0},
		DefaultKey:   dk,
	}
}

// newToken is a valid CreateTokenV1 of zone-1.
func newToken(id, org string, role Role) CreateTokenV1 {
	h := sha256.Sum256([]byte("secret-" + id))
	return CreateTokenV1{Token: Token{
		ID: id, Organization: org, Role: role, SecretHash: h[:], HomeZone: "zone-1",
		CreatedAt: t0, ExpiresAt: t0 + 30*day,
	}}
}

func revoke(id, org string, now int64) RevokeTokenV1 {
	return RevokeTokenV1{Organization: org, TokenID: id, Now: now}
}

func intPtr(n int) *int { return &n }

// checkQuotaCounter compares the quota counter with a scan of the keys.
func checkQuotaCounter(t *testing.T, f *FSM) {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	want := map[string]int{}
	for _, k := range f.st.keys {
		if !k.Default && !k.IsReplicaIn(f.zone) {
			want[k.Organization]++
		}
	}
	if !maps.Equal(f.st.primaries, want) {
		t.Errorf("quota counter %v, a scan of the keys gives %v", f.st.primaries, want)
	}
}

// tenancyAnswers renders what the tenancy queries answer, so that two
// FSMs can be compared through their API.
func tenancyAnswers(t *testing.T, f *FSM, orgs ...string) string {
	t.Helper()
	type answers struct {
		Orgs   []*Organization
		ByName map[string]string
		Tokens map[string][]*Token
		Counts map[string]int
	}
	a := answers{Orgs: f.Organizations(), ByName: map[string]string{}, Tokens: map[string][]*Token{}, Counts: map[string]int{}}
	for _, o := range a.Orgs {
		if got, ok := f.OrganizationByName(o.Name); ok {
			a.ByName[o.Name] = got.ID
		}
	}
	for _, org := range orgs {
		a.Tokens[org] = f.Tokens(org)
		a.Counts[org] = f.PrimaryKeyCount(org)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tenancyCommandCases are the cases of commandCases for commands 20-23.
func tenancyCommandCases(setup func(...step) []step) []commandCase {
	return []commandCase{
		{
			name:  "CreateOrganization",
			setup: setup(),
			cmd:   step{CmdCreateOrganization, newOrg(orgT, "Tenant T", 10, "zone-2")},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				k := wantKey(t, f, res, index, KeyStateEnabled)
				o := res.Organization
				if o == nil || o.ID != orgT || o.DefaultKeyID != k.ID || o.Generation != 1 || o.CreatedAt != t0 || o.UpdatedAt != t0 {
					t.Fatalf("Organization = %+v, want %s with default key %s at generation 1", o, orgT, k.ID)
				}
				if !k.Default || !k.Protected || k.Organization != orgT {
					t.Errorf("default key: Default %v Protected %v Organization %s, want true, true, %s", k.Default, k.Protected, k.Organization, orgT)
				}
				if got, ok := f.Organization(orgT); !ok || got != o {
					t.Errorf("Organization(%s) = %p, %v, want the result %p", orgT, got, ok, o)
				}
				entries, _ := f.ChangesAfter(0, 0)
				if len(entries) != 2 || entries[0].Key != k || entries[1].KeyID != "org:"+orgT || entries[1].Organization != o {
					t.Errorf("change log = %+v, want the default key then the organization", entries)
				}
				checkQuotaCounter(t, f)
			},
		},
		{
			name: "UpdateOrganization",
			setup: setup(
				step{CmdCreateOrganization, newOrg(orgT, "Tenant T", 10)},
			),
			cmd: step{CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(20), Now: t0 + hour}},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				o := res.Organization
				if res.Err != nil || o == nil || o.KeyQuota != 20 || o.Generation != 2 || o.UpdatedAt != t0+hour || o.RateBurst != 100 {
					t.Fatalf("Result = %+v, %+v, want quota 20 at generation 2", res, o)
				}
				entries, _ := f.ChangesAfter(0, 0)
				if e := entries[len(entries)-1]; e.Organization != o {
					t.Errorf("the update is not the newest entry of the change log: %+v", e)
				}
			},
		},
		{
			name: "CreateToken",
			setup: setup(
				step{CmdCreateOrganization, newOrg(orgT, "Tenant T", 10)},
			),
			cmd: step{CmdCreateToken, newToken("tk1", orgT, RoleCryptoUser)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				tk := res.Token
				if res.Err != nil || tk == nil || tk.ID != "tk1" || tk.Generation != 1 || tk.Revoked() {
					t.Fatalf("Result = %+v, want token tk1 at generation 1", res)
				}
				if got, ok := f.Token("tk1"); !ok || got != tk {
					t.Errorf("Token(tk1) = %p, %v, want %p", got, ok, tk)
				}
				entries, _ := f.ChangesAfter(0, 0)
				if e := entries[len(entries)-1]; e.KeyID != "token:tk1" || e.Token != tk {
					t.Errorf("the token is not the newest entry of the change log: %+v", e)
				}
			},
		},
		{
			name: "RevokeToken",
			setup: setup(
				step{CmdCreateOrganization, newOrg(orgT, "Tenant T", 10)},
				step{CmdCreateToken, newToken("tk1", orgT, RoleCryptoUser)},
			),
			cmd: step{CmdRevokeToken, revoke("tk1", orgT, t0+hour)},
			check: func(t *testing.T, f *FSM, res Result, index uint64) {
				tk := res.Token
				if res.Err != nil || tk == nil || tk.RevokedAt != t0+hour || tk.Generation != 2 {
					t.Fatalf("Result = %+v, want tk1 revoked at generation 2", res)
				}
				if got, _ := f.Token("tk1"); got != tk {
					t.Errorf("stored token %+v, want the result", got)
				}
			},
		},
	}
}

func TestFSM_CreateOrganization_Refusals(t *testing.T) {
	otherID := newOrg(orgT, "Tenant T", 10)
	otherID.DefaultKey = withPolicy(createKey("dk-other", orgT), 90*day, t0+90*day)
	sameName := newOrg(orgU, "Tenant T", 10)
	tooLong := newOrg(orgU, strings.Repeat("é", MaxOrganizationName+1), 10)
	badQuota := newOrg(orgU, "U", -1)
	otherZone := newOrg(orgU, "U", 10)
	otherZone.Organization.HomeZone = "zone-2"
	noZone := newOrg(orgU, "U", 10)
	noZone.Organization.HomeZone = ""
	slash := newOrg("a/b", "U", 10)
	slash.DefaultKey.Organization = "a/b"
	noName := newOrg(orgU, "", 10)
	foreignKey := newOrg(orgU, "U", 10)
	foreignKey.DefaultKey.Organization = orgT
	noRotation := newOrg(orgU, "U", 10)
	noRotation.DefaultKey.RotationPolicy = RotationPolicy{}
	external := newOrg(orgU, "U", 10)
	external.DefaultKey = withPolicy(createExternal("dk-"+orgU, orgU), 90*day, t0+90*day)
	keyTaken := newOrg(orgU, "U", 10)
	keyTaken.DefaultKey = withPolicy(createKey("k1", orgU), 90*day, t0+90*day)
	wrongDefault := newOrg(orgU, "U", 10)
	wrongDefault.Organization.DefaultKeyID = "dk-other"

	tests := []struct {
		name    string
		payload CreateOrganizationV1
		want    error
	}{
		{"same id, another creation", otherID, ErrOrganizationExists},
		{"same name", sameName, ErrOrganizationExists},
		{"name too long", tooLong, ErrInvalidCommand},
		{"empty name", noName, ErrInvalidCommand},
		{"negative quota", badQuota, ErrInvalidCommand},
		{"another home zone", otherZone, ErrInvalidCommand},
		{"no home zone", noZone, ErrInvalidCommand},
		{"id with a slash", slash, ErrInvalidCommand},
		{"default key of another organization", foreignKey, ErrInvalidCommand},
		{"default key without rotation", noRotation, ErrInvalidCommand},
		{"default key of origin external", external, ErrInvalidCommand},
		{"default key id of a live key", keyTaken, ErrKeyExists},
		{"default key id differing from the organization's", wrongDefault, ErrInvalidCommand},
	}
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
	first := apply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 10))
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := stateBytes(t, f)
			res := apply(t, f, CmdCreateOrganization, tt.payload)
			if !errors.Is(res.Err, tt.want) {
				t.Fatalf("Err = %v, want %v", res.Err, tt.want)
			}
			if res.Organization != nil || res.Key != nil {
				t.Errorf("a refusal returned records: %+v", res)
			}
			if after := stateBytes(t, f); after != before {
				t.Errorf("a refused create changed the state")
			}
		})
	}

	// A retried forward of the first creation is a success that changes
	// nothing, even after the organization changed.
	mustApply(t, f, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(3), Now: t0 + hour})
	o, _ := f.Organization(orgT)
	before := stateBytes(t, f)
	res := apply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 10))
	if res.Err != nil || res.Organization != o || res.Key == nil || res.Key.ID != "dk-"+orgT {
		t.Fatalf("retry = %+v, want the stored organization and its default key", res)
	}
	if stateBytes(t, f) != before {
		t.Error("a retried create changed the state")
	}
	// A name of exactly MaxOrganizationName characters is fine.
	if res := apply(t, f, CmdCreateOrganization, newOrg(orgU, strings.Repeat("é", MaxOrganizationName), 10)); res.Err != nil {
		t.Errorf("name of %d characters: %v", MaxOrganizationName, res.Err)
	}
	if got := f.Organizations(); len(got) != 2 || got[0].ID != orgT || got[1].ID != orgU {
		t.Errorf("Organizations() = %+v, want %s then %s (by name)", got, orgT, orgU)
	}
	if got, ok := f.OrganizationByName("Tenant T"); !ok || got.ID != orgT {
		t.Errorf("OrganizationByName = %+v, %v", got, ok)
	}
	if _, ok := f.OrganizationByName("nobody"); ok {
		t.Error("OrganizationByName of an unknown name found one")
	}
}

func TestFSM_UpdateOrganization(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 10))
	o, _ := f.Organization(orgT)
	for _, tt := range []struct {
		name string
		p    UpdateOrganizationV1
		want error
	}{
		{"unknown", UpdateOrganizationV1{ID: orgU, KeyQuota: intPtr(1), Now: t0}, ErrOrganizationNotFound},
		{"negative quota", UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(-1), Now: t0}, ErrInvalidCommand},
		{"negative burst", UpdateOrganizationV1{ID: orgT, RateBurst: intPtr(-1), Now: t0}, ErrInvalidCommand},
	} {
		before := stateBytes(t, f)
		if res := apply(t, f, CmdUpdateOrganization, tt.p); !errors.Is(res.Err, tt.want) {
			t.Errorf("%s: Err = %v, want %v", tt.name, res.Err, tt.want)
		}
		if stateBytes(t, f) != before {
			t.Errorf("%s: a refused update changed the state", tt.name)
		}
	}
	// No field: nothing changes.
	seq := f.ChangeSeq()
	if res := apply(t, f, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, Now: t0 + hour}); res.Err != nil || res.Organization != o {
		t.Errorf("empty update = %+v, want the organization unchanged", res)
	}
	if f.ChangeSeq() != seq {
		t.Error("an empty update was logged")
	}
	rate := -1.0
	res := apply(t, f, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, RateLimit: &rate, RateBurst: intPtr(5), Now: t0 + hour})
	if got := res.Organization; res.Err != nil || got.RateLimit != -1 || got.RateBurst != 5 || got.KeyQuota != 10 || got.Generation != 2 {
		t.Fatalf("update = %+v, %+v", res, got)
	}
	if o.Generation != 1 || o.RateBurst != 100 {
		t.Errorf("the update mutated the stored record a reader held: %+v", o)
	}
}

func TestFSM_Tokens(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 10))
	mustApply(t, f, CmdCreateOrganization, newOrg(orgU, "Tenant U", 10))

	later := newToken("tk0", orgT, RoleAuditor)
	later.Token.CreatedAt = t0 + hour
	for _, p := range []CreateTokenV1{newToken("tk2", orgT, RoleOrgAdmin), later, newToken("tk1", orgT, RoleCryptoUser), newToken("tu", orgU, RoleKeyAdmin)} {
		if res := apply(t, f, CmdCreateToken, p); res.Err != nil {
			t.Fatalf("create token %s: %v", p.Token.ID, res.Err)
		}
	}
	if got := tokenIDs(f.Tokens(orgT)); !slices.Equal(got, []string{"tk1", "tk2", "tk0"}) {
		t.Errorf("Tokens(%s) = %v, want [tk1 tk2 tk0] (by creation time, then id)", orgT, got)
	}

	otherHash := newToken("tk1", orgT, RoleCryptoUser)
	otherHash.Token.SecretHash = bytes.Repeat([]byte{1}, 32)
	shortHash := newToken("tk9", orgT, RoleCryptoUser)
	shortHash.Token.SecretHash = shortHash.Token.SecretHash[:16]
	revoked := newToken("tk9", orgT, RoleCryptoUser)
	revoked.Token.RevokedAt = t0
	expired := newToken("tk9", orgT, RoleCryptoUser)
	expired.Token.ExpiresAt = t0
	otherZone := newToken("tk9", orgT, RoleCryptoUser)
	otherZone.Token.HomeZone = "zone-2"
	for _, tt := range []struct {
		name string
		typ  CommandType
		p    any
		want error
	}{
		{"unknown organization", CmdCreateToken, newToken("tk9", "org-x", RoleAuditor), ErrOrganizationNotFound},
		{"unknown role", CmdCreateToken, newToken("tk9", orgT, Role("root")), ErrInvalidCommand},
		{"short secret hash", CmdCreateToken, shortHash, ErrInvalidCommand},
		{"created revoked", CmdCreateToken, revoked, ErrInvalidCommand},
		{"expired at creation", CmdCreateToken, expired, ErrInvalidCommand},
		{"another home zone", CmdCreateToken, otherZone, ErrInvalidCommand},
		{"empty id", CmdCreateToken, newToken("", orgT, RoleAuditor), ErrInvalidCommand},
		{"taken id, another token", CmdCreateToken, otherHash, ErrInvalidCommand},
		{"revoke unknown", CmdRevokeToken, revoke("tk9", orgT, t0), ErrTokenNotFound},
		{"revoke another organization's", CmdRevokeToken, revoke("tu", orgT, t0), ErrTokenNotFound},
		{"revoke without a time", CmdRevokeToken, revoke("tk1", orgT, 0), ErrInvalidCommand},
	} {
		before := stateBytes(t, f)
		res := apply(t, f, tt.typ, tt.p)
		if !errors.Is(res.Err, tt.want) {
			t.Errorf("%s: Err = %v, want %v", tt.name, res.Err, tt.want)
		}
		if res.Token != nil || stateBytes(t, f) != before {
			t.Errorf("%s: a refusal returned %+v or changed the state", tt.name, res.Token)
		}
	}

	// A retried create returns the stored token and changes nothing.
	tk1, _ := f.Token("tk1")
	before := stateBytes(t, f)
	if res := apply(t, f, CmdCreateToken, newToken("tk1", orgT, RoleCryptoUser)); res.Err != nil || res.Token != tk1 {
		t.Errorf("retried create = %+v, want the stored token", res)
	}
	if stateBytes(t, f) != before {
		t.Error("a retried create changed the state")
	}

	// Revoke, then revoke again: the second changes nothing.
	r1 := apply(t, f, CmdRevokeToken, revoke("tk1", orgT, t0+2*hour))
	if r1.Err != nil || r1.Token.RevokedAt != t0+2*hour || r1.Token.Generation != 2 || !r1.Token.Revoked() {
		t.Fatalf("revoke = %+v", r1)
	}
	if tk1.Revoked() {
		t.Error("revoking mutated the record a reader held")
	}
	before = stateBytes(t, f)
	r2 := apply(t, f, CmdRevokeToken, revoke("tk1", orgT, t0+3*hour))
	if r2.Err != nil || r2.Token != r1.Token {
		t.Errorf("second revoke = %+v, want the revoked token unchanged", r2)
	}
	if stateBytes(t, f) != before {
		t.Error("a second revoke changed the state")
	}
	// The other organization's token is untouched; revoked tokens stay listed.
	if tu, _ := f.Token("tu"); tu.Revoked() {
		t.Error("tu revoked")
	}
	if got := tokenIDs(f.Tokens(orgT)); len(got) != 3 {
		t.Errorf("Tokens after a revoke = %v, want the three", got)
	}
}

func tokenIDs(ts []*Token) []string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.ID)
	}
	return ids
}

func TestFSM_Quota(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 2, "zone-2"))
	mustApply(t, f, CmdCreateKey, createKey("k1", orgT))
	mustApply(t, f, CmdCreateKey, withReplicas(createKey("k2", orgT), "zone-2"))
	if n := f.PrimaryKeyCount(orgT); n != 2 {
		t.Fatalf("PrimaryKeyCount = %d, want 2 (the default key aside)", n)
	}

	before := stateBytes(t, f)
	res := apply(t, f, CmdCreateKey, createKey("k3", orgT))
	if !errors.Is(res.Err, ErrQuotaExceeded) {
		t.Fatalf("third key: Err = %v, want ErrQuotaExceeded", res.Err)
	}
	for _, s := range []string{orgT, "quota is 2", "zone-1"} {
		if !strings.Contains(res.Err.Error(), s) {
			t.Errorf("message %q does not name %q", res.Err, s)
		}
	}
	if stateBytes(t, f) != before {
		t.Error("a refused create changed the state")
	}
	// Replicas of another zone's primaries don't count.
	mustApply(t, f, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-2", After: 0, Upto: 1, Now: t0, Entries: []ChangeEntry{
		{Seq: 1, KeyID: "r1", Key: remoteKey("r1", orgT, "zone-2", "zone-1")}}})
	if n := f.PrimaryKeyCount(orgT); n != 2 {
		t.Errorf("after a replica arrived: PrimaryKeyCount = %d, want 2", n)
	}
	checkQuotaCounter(t, f)

	// A purged key frees its place.
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgT, t0, t0+day))
	if res := apply(t, f, CmdCreateKey, createKey("k3", orgT)); !errors.Is(res.Err, ErrQuotaExceeded) {
		t.Errorf("a key pending deletion still counts: Err = %v, want ErrQuotaExceeded", res.Err)
	}
	mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + day})
	mustApply(t, f, CmdCreateKey, createKey("k3", orgT))
	checkQuotaCounter(t, f)

	// A key handed over to another zone leaves the count.
	mustApply(t, f, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: f.ChangeSeq(), Now: t0})
	mustApply(t, f, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("k2", orgT, t0+hour), NewPrimary: "zone-2"})
	if n := f.PrimaryKeyCount(orgT); n != 1 {
		t.Errorf("after handing k2 over: PrimaryKeyCount = %d, want 1", n)
	}
	// And one taken over by force joins it.
	mustApply(t, f, CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref("r1", orgT, t0+hour), NewPrimary: "zone-1", Force: true})
	if n := f.PrimaryKeyCount(orgT); n != 2 {
		t.Errorf("after taking r1 over: PrimaryKeyCount = %d, want 2", n)
	}
	checkQuotaCounter(t, f)

	// Raising the quota lets more in; a quota of 0 means none.
	mustApply(t, f, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(3), Now: t0 + hour})
	mustApply(t, f, CmdCreateKey, createKey("k4", orgT))
	if res := apply(t, f, CmdCreateKey, createKey("k5", orgT)); !errors.Is(res.Err, ErrQuotaExceeded) {
		t.Errorf("quota 3: Err = %v, want ErrQuotaExceeded", res.Err)
	}
	mustApply(t, f, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(0), Now: t0 + hour})
	mustApply(t, f, CmdCreateKey, createKey("k5", orgT))

	// An organization without a record (the legacy default) has no quota.
	for _, id := range []string{"a1", "a2", "a3", "a4"} {
		mustApply(t, f, CmdCreateKey, createKey(id, DefaultOrganization))
	}
	if n := f.PrimaryKeyCount(DefaultOrganization); n != 4 {
		t.Errorf("PrimaryKeyCount(%s) = %d, want 4", DefaultOrganization, n)
	}
	checkQuotaCounter(t, f)
	if g := roundTrip(t, f); tenancyAnswers(t, g, orgT, DefaultOrganization) != tenancyAnswers(t, f, orgT, DefaultOrganization) {
		t.Error("the restored counter differs")
	}
}

// TestFSM_Quota_SingleZone: with zone "" every key counts.
func TestFSM_Quota_SingleZone(t *testing.T) {
	f := New(testLogger(t))
	p := newOrg(orgT, "Tenant T", 1)
	p.Organization.HomeZone = ""
	mustApply(t, f, CmdCreateOrganization, p)
	k := createKey("k1", orgT)
	k.PrimaryZone = ""
	mustApply(t, f, CmdCreateKey, k)
	k.ID = "k2"
	if res := apply(t, f, CmdCreateKey, k); !errors.Is(res.Err, ErrQuotaExceeded) {
		t.Errorf("Err = %v, want ErrQuotaExceeded", res.Err)
	}
	if f.ChangeLogLen() != 0 {
		t.Errorf("a single-zone state machine logged %d changes", f.ChangeLogLen())
	}
	checkQuotaCounter(t, f)
}

func TestFSM_DefaultKey(t *testing.T) {
	dk := "dk-" + orgT
	noRotation := UpdateKeyV1{KeyRefV1: ref(dk, orgT, t0+hour), RotationPolicy: &RotationPolicy{}}
	longer := UpdateKeyV1{KeyRefV1: ref(dk, orgT, t0+hour), RotationPolicy: &RotationPolicy{Period: 30 * day, NextRotationAt: t0 + 30*day}}
	tests := []struct {
		name string
		cmd  step
		want error // nil: allowed
	}{
		{"disable", step{CmdDisableKey, ref(dk, orgT, t0+hour)}, ErrDefaultKey},
		{"schedule deletion", step{CmdScheduleDeletion, scheduleDeletion(dk, orgT, t0+hour, t0+day)}, ErrDefaultKey},
		{"unprotect", step{CmdUnprotectKey, ref(dk, orgT, t0+hour)}, ErrDefaultKey},
		{"turn rotation off", step{CmdUpdateKey, noRotation}, ErrDefaultKey},
		{"drop a replica zone", step{CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref(dk, orgT, t0+hour), ReplicaZones: []string{"zone-3"}}}, ErrDefaultKey},
		{"drop every replica zone", step{CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref(dk, orgT, t0+hour)}}, ErrDefaultKey},
		{"rotate", step{CmdRotateKey, rotate(dk, orgT, 2, t0+hour)}, nil},
		{"enable", step{CmdEnableKey, ref(dk, orgT, t0+hour)}, nil},
		{"protect", step{CmdProtectKey, ref(dk, orgT, t0+hour)}, nil},
		{"change the rotation period", step{CmdUpdateKey, longer}, nil},
		{"add a replica zone", step{CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref(dk, orgT, t0+hour), ReplicaZones: []string{"zone-2", "zone-3", "zone-4"}}}, nil},
		{"update primary", step{CmdUpdatePrimary, UpdatePrimaryV1{KeyRefV1: ref(dk, orgT, t0+hour), NewPrimary: "zone-2"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			mustApply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 10, "zone-2", "zone-3"))
			mustApply(t, f, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: f.ChangeSeq(), Now: t0})
			before := stateBytes(t, f)
			res := apply(t, f, tt.cmd.typ, tt.cmd.payload)
			if !errors.Is(res.Err, tt.want) || (tt.want == nil && res.Err != nil) {
				t.Fatalf("Err = %v, want %v", res.Err, tt.want)
			}
			if tt.want != nil {
				if !strings.Contains(res.Err.Error(), dk) {
					t.Errorf("message %q does not name the key", res.Err)
				}
				if stateBytes(t, f) != before {
					t.Error("a refusal changed the state")
				}
				got := resultRoundTrip(t, res)
				if !errors.Is(got.Err, ErrDefaultKey) {
					t.Errorf("forwarded: Err = %v, want ErrDefaultKey", got.Err)
				}
			}
			checkQuotaCounter(t, f)
		})
	}
}

// TestFSM_Tenancy_Replication: the home zone's change log carries the
// records to another zone, whose copies follow generations.
func TestFSM_Tenancy_Replication(t *testing.T) {
	a, b := newZoneFSM(t, "zone-1"), newZoneFSM(t, "zone-2")
	// An organization whose default key has no replica in zone-2: the
	// records travel anyway.
	mustApply(t, a, CmdCreateOrganization, newOrg(orgT, "Tenant T", 1))
	mustApply(t, a, CmdCreateOrganization, newOrg(orgU, "Tenant U", 5, "zone-2"))
	mustApply(t, a, CmdCreateToken, newToken("tk1", orgT, RoleOrgAdmin))
	if res := pull(t, a, b); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, id := range []string{orgT, orgU} {
		want, _ := a.Organization(id)
		if got, ok := b.Organization(id); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("zone-2 holds %+v, %v, want %+v", got, ok, want)
		}
	}
	if got, ok := b.Token("tk1"); !ok || got.Generation != 1 || len(b.Tokens(orgT)) != 1 {
		t.Errorf("zone-2 holds token %+v, %v", got, ok)
	}
	if k, ok := b.Key("dk-" + orgU); !ok || !k.Default || !k.IsReplicaIn("zone-2") {
		t.Errorf("zone-2's copy of the default key: %+v, %v", k, ok)
	}
	if _, ok := b.Key("dk-" + orgT); ok {
		t.Error("zone-2 holds a default key without a replica there")
	}
	if n := b.ChangeLogLen(); n != 0 {
		t.Errorf("zone-2 logged %d changes of records it does not write", n)
	}
	// The quota holds in zone-2 too, for keys whose primary is there.
	k := createKey("b1", orgT)
	k.PrimaryZone = "zone-2"
	mustApply(t, b, CmdCreateKey, k)
	k.ID = "b2"
	if res := apply(t, b, CmdCreateKey, k); !errors.Is(res.Err, ErrQuotaExceeded) {
		t.Errorf("zone-2 over quota: Err = %v, want ErrQuotaExceeded", res.Err)
	}
	// Only the home zone changes the records.
	if res := apply(t, b, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(3), Now: t0}); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("update in zone-2: Err = %v, want ErrInvalidCommand", res.Err)
	}
	if res := apply(t, b, CmdRevokeToken, revoke("tk1", orgT, t0)); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("revoke in zone-2: Err = %v, want ErrInvalidCommand", res.Err)
	}

	// Changes in the home zone follow.
	mustApply(t, a, CmdUpdateOrganization, UpdateOrganizationV1{ID: orgT, KeyQuota: intPtr(3), Now: t0 + hour})
	mustApply(t, a, CmdRevokeToken, revoke("tk1", orgT, t0+hour))
	oldOrg, _ := b.Organization(orgT)
	pull(t, a, b)
	if o, _ := b.Organization(orgT); o.Generation != 2 || o.KeyQuota != 3 {
		t.Errorf("zone-2 after the update: %+v", o)
	}
	if tk, _ := b.Token("tk1"); !tk.Revoked() || tk.Generation != 2 {
		t.Errorf("zone-2 after the revoke: %+v", tk)
	}
	mustApply(t, b, CmdCreateKey, k) // quota 3 now
	checkQuotaCounter(t, b)

	// Entries that must not apply: an older or equal generation, a record
	// from a zone that is not its home.
	stale := *oldOrg
	stale.KeyQuota = 99
	sameGen, _ := a.Organization(orgT)
	sameGenCopy := *sameGen
	sameGenCopy.KeyQuota = 98
	revived, _ := a.Token("tk1")
	revivedCopy := *revived
	revivedCopy.RevokedAt = 0
	foreign := Organization{ID: "org-z", Name: "Z", HomeZone: "zone-1", Generation: 1}
	before := string(jsonSnapshotBytes(t, b)) // a line a record
	seq := b.ReplicationOf("zone-1").Applied
	mustApply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: seq, Upto: seq + 3, Now: t0, Entries: []ChangeEntry{
		{Seq: seq + 1, KeyID: "org:" + orgT, Organization: &stale},
		{Seq: seq + 2, KeyID: "org:" + orgT, Organization: &sameGenCopy},
		{Seq: seq + 3, KeyID: "token:tk1", Token: &revivedCopy},
	}})
	mustApply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-3", After: 0, Upto: 1, Now: t0, Entries: []ChangeEntry{
		{Seq: 1, KeyID: "org:org-z", Organization: &foreign},
	}})
	if o, _ := b.Organization(orgT); o.KeyQuota != 3 {
		t.Errorf("an older or equal generation replaced zone-2's copy: %+v", o)
	}
	if tk, _ := b.Token("tk1"); !tk.Revoked() {
		t.Error("an equal generation un-revoked the token")
	}
	if _, ok := b.Organization("org-z"); ok {
		t.Error("a record from a zone that is not its home was applied")
	}
	// Only the replication progress moved.
	if got := string(jsonSnapshotBytes(t, b)); strings.Count(got, "\n") != strings.Count(before, "\n")+1 {
		t.Errorf("refused entries changed more than the progress:\n%s\nwas\n%s", got, before)
	}
	// The home zone never takes its own records back from another zone.
	own := *sameGen
	own.Generation, own.KeyQuota = 9, 97
	mustApply(t, a, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-2", After: 0, Upto: 1, Now: t0, Entries: []ChangeEntry{
		{Seq: 1, KeyID: "org:" + orgT, Organization: &own},
	}})
	if o, _ := a.Organization(orgT); o.KeyQuota != 3 {
		t.Errorf("the home zone took its record from zone-2: %+v", o)
	}
}

func TestFSM_Tenancy_MalformedEntries(t *testing.T) {
	o := &Organization{ID: orgT, Name: "T", HomeZone: "zone-1", Generation: 1}
	tk := newToken("tk1", orgT, RoleAuditor).Token
	for name, e := range map[string]ChangeEntry{
		"organization in a token slot":  {Seq: 1, KeyID: "token:" + orgT, Organization: o},
		"organization in another slot":  {Seq: 1, KeyID: "org:other", Organization: o},
		"token in the org slot":         {Seq: 1, KeyID: "org:tk1", Token: &tk},
		"two records":                   {Seq: 1, KeyID: "org:" + orgT, Organization: o, Token: &tk},
		"key and organization":          {Seq: 1, KeyID: "org:" + orgT, Organization: o, Key: remoteKey("org:"+orgT, orgT, "zone-1", "zone-2")},
		"key in a tenancy slot":         {Seq: 1, KeyID: "org:x", Key: remoteKey("org:x", orgT, "zone-1", "zone-2")},
		"nothing":                       {Seq: 1, KeyID: "org:" + orgT},
		"organization without an id":    {Seq: 1, KeyID: "org:", Organization: &Organization{HomeZone: "zone-1"}},
		"token without an organization": {Seq: 1, KeyID: "token:t", Token: &Token{ID: "t", HomeZone: "zone-1"}},
	} {
		b := newZoneFSM(t, "zone-2")
		res := apply(t, b, CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-1", After: 0, Upto: 1, Now: t0, Entries: []ChangeEntry{e}})
		if !errors.Is(res.Err, ErrInvalidCommand) {
			t.Errorf("%s: Err = %v, want ErrInvalidCommand", name, res.Err)
		}
	}
	// A key id may not take a tenancy slot.
	f := newFSM(t)
	if res := apply(t, f, CmdCreateKey, createKey("org:x", orgA)); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("key id in a tenancy slot: Err = %v, want ErrInvalidCommand", res.Err)
	}
}

// TestFSM_Tenancy_SnapshotRoundTrip: organizations, tokens, their
// indexes, the quota counter and the change log survive Persist and
// Restore, and the restored FSM goes on like the original.
func TestFSM_Tenancy_SnapshotRoundTrip(t *testing.T) {
	f := newFSM(t)
	for _, s := range []step{
		{CmdCreateOrganization, newOrg(orgT, "Tenant T", 2, "zone-2")},
		{CmdCreateOrganization, newOrg(orgU, "Tenant U", 0)},
		{CmdCreateToken, newToken("tk1", orgT, RoleOrgAdmin)},
		{CmdCreateToken, newToken("tk2", orgT, RoleCryptoUser)},
		{CmdCreateToken, newToken("tu", orgU, RoleAuditor)},
		{CmdRevokeToken, revoke("tk2", orgT, t0+hour)},
		{CmdUpdateOrganization, UpdateOrganizationV1{ID: orgU, KeyQuota: intPtr(7), Now: t0 + hour}},
		{CmdCreateKey, createKey("k1", orgT)},
		{CmdCreateKey, createKey("k2", orgU)},
		{CmdApplyChanges, ApplyChangesV1{SourceZone: "zone-2", After: 0, Upto: 1, Now: t0, Entries: []ChangeEntry{
			{Seq: 1, KeyID: "r1", Key: remoteKey("r1", orgT, "zone-2", "zone-1")}}}},
	} {
		if res := apply(t, f, s.typ, s.payload); res.Err != nil {
			t.Fatalf("command %d: %v", s.typ, res.Err)
		}
	}
	want := snapshotBytes(t, f)
	for _, rec := range []string{`"type":"organization"`, `"type":"token"`, `"organizations":2`, `"tokens":3`} {
		if !bytes.Contains(jsonSnapshotBytes(t, f), []byte(rec)) {
			t.Errorf("snapshot lacks %s", rec)
		}
	}
	g := roundTrip(t, f)
	if got := snapshotBytes(t, g); !bytes.Equal(got, want) {
		t.Errorf("restored snapshot differs:\ngot  %s\nwant %s", got, want)
	}
	if got, wantA := tenancyAnswers(t, g, orgT, orgU), tenancyAnswers(t, f, orgT, orgU); got != wantA {
		t.Errorf("restored answers differ:\ngot  %s\nwant %s", got, wantA)
	}
	checkQuotaCounter(t, g)
	if n := g.PrimaryKeyCount(orgT); n != 1 {
		t.Errorf("restored PrimaryKeyCount = %d, want 1", n)
	}
	// Both go on alike: one more key fills org-t's quota, the next is refused.
	for _, s := range []step{
		{CmdCreateKey, createKey("k3", orgT)},
		{CmdCreateKey, createKey("k4", orgT)},
		{CmdRevokeToken, revoke("tk1", orgT, t0+2*hour)},
		{CmdRenumberChanges, RenumberChangesV1{Above: 100}},
	} {
		rf, rg := apply(t, f, s.typ, s.payload), apply(t, g, s.typ, s.payload)
		jf, _ := rf.MarshalJSON()
		jg, _ := rg.MarshalJSON()
		if !bytes.Equal(jf, jg) {
			t.Errorf("command %d: results differ: %s vs %s", s.typ, jf, jg)
		}
	}
	if !bytes.Equal(snapshotBytes(t, f), snapshotBytes(t, g)) {
		t.Error("snapshots differ after more commands")
	}
	// The renumbered log still holds every record, above 100.
	entries, _ := f.ChangesAfter(100, 0)
	var slots []string
	for _, e := range entries {
		slots = append(slots, e.KeyID)
	}
	for _, slot := range []string{"org:" + orgT, "org:" + orgU, "token:tk1", "token:tk2", "token:tu", "dk-" + orgT} {
		if !slices.Contains(slots, slot) {
			t.Errorf("renumbered log %v lacks %s", slots, slot)
		}
	}
	if e := entries[slices.Index(slots, "token:tk1")]; e.Token == nil || !e.Token.Revoked() {
		t.Errorf("renumbered entry of tk1 = %+v, want its current (revoked) state", e.Token)
	}

	// Backup and CheckSnapshot count the records.
	var buf bytes.Buffer
	info, err := f.Backup(&buf)
	if err != nil || info.Organizations != 2 || info.Tokens != 3 {
		t.Fatalf("Backup = %+v, %v, want 2 organizations and 3 tokens", info, err)
	}
	if checked, err := CheckSnapshot(bytes.NewReader(buf.Bytes()), "zone-1"); err != nil || checked != info {
		t.Errorf("CheckSnapshot = %+v, %v, want %+v", checked, err, info)
	}
}

func TestFSM_Tenancy_SnapshotRefusals(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 2))
	mustApply(t, f, CmdCreateToken, newToken("tk1", orgT, RoleOrgAdmin))
	good := string(jsonSnapshotBytes(t, f))
	orgLine := good[strings.Index(good, `{"type":"organization"`):]
	orgLine = orgLine[:strings.IndexByte(orgLine, '\n')+1]
	tokenLine := good[strings.Index(good, `{"type":"token"`):]
	tokenLine = tokenLine[:strings.IndexByte(tokenLine, '\n')+1]
	for name, bad := range map[string]string{
		"duplicate organization": strings.Replace(good, orgLine, orgLine+orgLine, 1),
		"duplicate token":        strings.Replace(good, tokenLine, tokenLine+tokenLine, 1),
		"organization missing":   strings.Replace(good, orgLine, "", 1),
		"token without id":       strings.Replace(good, `"id":"tk1"`, `"id":""`, 1),
	} {
		if err := restoreBytes(newFSM(t), []byte(bad)); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
	// A state without tenancy writes no tenancy counts: the same bytes
	// as before tenancy existed.
	g := newFSM(t)
	mustApply(t, g, CmdCreateKey, createKey("k1", orgA))
	if b := snapshotBytes(t, g); bytes.Contains(b, []byte("organizations")) || bytes.Contains(b, []byte("tokens")) {
		t.Errorf("snapshot without tenancy mentions it: %s", b)
	}
}

func TestResult_JSON_Tenancy(t *testing.T) {
	f := newFSM(t)
	created := apply(t, f, CmdCreateOrganization, newOrg(orgT, "Tenant T", 2, "zone-2"))
	token := apply(t, f, CmdCreateToken, newToken("tk1", orgT, RoleCryptoUser))
	for _, r := range []Result{
		created,
		token,
		{Organization: created.Organization, Token: token.Token, Key: created.Key},
	} {
		if got := resultRoundTrip(t, r); !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\ngot  %+v\nwant %+v", got, r)
		}
	}
	for _, err := range []error{ErrOrganizationNotFound, ErrOrganizationExists, ErrTokenNotFound, ErrQuotaExceeded, ErrDefaultKey} {
		if code := resultCode(t, Result{Err: err}); code == CodeInvalidCommand {
			t.Errorf("%v travels as %s", err, code)
		}
	}
}

func resultCode(t *testing.T, r Result) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var w resultWire
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w.ErrCode
}

// TestFSM_Tenancy_Determinism_MixedLog runs the mixed key log with
// records for its two organizations (small quotas, so that creates are
// refused and purges free places) and token commands in between: FSMs
// that apply it, or restore a snapshot halfway, agree, and the quota
// counter stays exact.
func TestFSM_Tenancy_Determinism_MixedLog(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	log := []step{
		{CmdCreateOrganization, newOrg(orgA, "Tenant A", 6, "zone-2")},
		{CmdCreateOrganization, newOrg(orgB, "Tenant B", 4)},
	}
	for i, s := range mixedLog(seed, 1500) {
		log = append(log, s)
		now := t0 + int64(i)*hour
		switch r.IntN(20) {
		case 0:
			p := newToken(fmt.Sprintf("tk%d", r.IntN(10)), testOrgs[r.IntN(2)], Roles[r.IntN(len(Roles))])
			p.Token.CreatedAt, p.Token.ExpiresAt = now, now+day
			log = append(log, step{CmdCreateToken, p})
		case 1:
			log = append(log, step{CmdRevokeToken, revoke(fmt.Sprintf("tk%d", r.IntN(10)), testOrgs[r.IntN(2)], now)})
		case 2:
			log = append(log, step{CmdUpdateOrganization, UpdateOrganizationV1{ID: testOrgs[r.IntN(2)], KeyQuota: intPtr(2 + r.IntN(8)), Now: now}})
		}
	}

	a, b, c := newFSM(t), newFSM(t), newFSM(t)
	ra, rb := applySteps(t, a, log), applySteps(t, b, log)
	half := newFSM(t)
	applySteps(t, half, log[:len(log)/2])
	if err := restoreBytes(c, snapshotBytes(t, half)); err != nil {
		t.Fatal(err)
	}
	applySteps(t, c, log[len(log)/2:])
	sa := snapshotBytes(t, a)
	if !bytes.Equal(sa, snapshotBytes(t, b)) || !bytes.Equal(sa, snapshotBytes(t, c)) {
		t.Fatal("FSMs that applied the same log have different snapshots")
	}
	if qa, qc := tenancyAnswers(t, a, testOrgs...), tenancyAnswers(t, c, testOrgs...); qa != qc {
		t.Errorf("answers differ:\n%s\n%s", qa, qc)
	}
	codes := map[string]int{}
	for i := range ra {
		ja, _ := json.Marshal(ra[i])
		jb, _ := json.Marshal(rb[i])
		if !bytes.Equal(ja, jb) {
			t.Fatalf("result %d differs: %s vs %s", i, ja, jb)
		}
		if ra[i].Err != nil {
			codes[resultCode(t, ra[i])]++
		}
	}
	t.Logf("refusals %v, tokens %d+%d", codes, len(a.Tokens(orgA)), len(a.Tokens(orgB)))
	for _, code := range []string{CodeQuotaExceeded, CodeTokenNotFound} {
		if codes[code] == 0 {
			t.Errorf("the log never refused with %s", code)
		}
	}
	for _, f := range []*FSM{a, c} {
		checkQuotaCounter(t, f)
	}
}
