package api_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// Tokens of the fake's organization "default", one per role besides
// testToken (org-admin); see roleEnv.
const (
	keyAdminToken   = "s3cret-key-admin-token"
	cryptoUserToken = "s3cret-crypto-user-token"
	auditorToken    = "s3cret-auditor-token"
)

// roleEnv is newEnv with a token of every role in the organization
// "default".
func roleEnv(t *testing.T, opts ...func(*api.Config)) *testEnv {
	t.Helper()
	e := newEnv(t, opts...)
	e.tenants.AddToken(keyAdminToken, fsm.DefaultOrganization, fsm.RoleKeyAdmin)
	e.tenants.AddToken(cryptoUserToken, fsm.DefaultOrganization, fsm.RoleCryptoUser)
	e.tenants.AddToken(auditorToken, fsm.DefaultOrganization, fsm.RoleAuditor)
	return e
}

// as sends a request with the bearer token secret.
func (e *testEnv) as(t *testing.T, secret, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, method, path, body, append([]string{"Authorization", "Bearer " + secret}, headers...)...)
}

// encryptAs encrypts plaintext under key id as the holder of secret and
// returns the response.
func (e *testEnv) encryptAs(t *testing.T, secret, id, plaintext string) wire.EncryptResponse {
	t.Helper()
	rec := e.as(t, secret, "POST", "/v1/keys/"+id+"/encrypt", `{"plaintext":"`+b64(plaintext)+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("encrypt under %s: got %d %s, want 200", id, rec.Code, rec.Body)
	}
	return decode[wire.EncryptResponse](t, rec)
}

func b64s(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestRouter_EveryRouteHasAPolicy walks the routes gin serves: each one
// but health, metrics and the node-to-node routes has a policy, and the
// policies are exactly the table below (who may call, audit operation,
// kind). A route added without a policy, or a policy widened by mistake,
// fails here.
func TestRouter_EveryRouteHasAPolicy(t *testing.T) {
	const (
		op      = "operator"
		any     = "operator,org-admin,key-admin,crypto-user,auditor"
		admins  = "org-admin,key-admin"
		readers = "org-admin,key-admin,auditor"
		crypto  = "org-admin,crypto-user"
	)
	want := map[string]api.RoutePolicy{
		"GET /v1/whoami":                       {Operation: "whoami", Kind: "read"},
		"GET /v1/cluster/status":               {Operation: "cluster-status", Kind: "read"},
		"GET /v1/zones":                        {Operation: "list-zones", Kind: "read"},
		"GET /v1/cluster/digest":               {Operation: "cluster-digest", Kind: "change"},
		"GET /v1/cluster/peers":                {Operation: "list-peers", Kind: "change"},
		"DELETE /v1/cluster/peers/:id":         {Operation: "remove-peer", Kind: "change"},
		"POST /v1/cluster/transfer-leadership": {Operation: "transfer-leadership", Kind: "change"},
		"GET /v1/cluster/snapshot":             {Operation: "save-snapshot", Kind: "change"},
		"PUT /v1/cluster/snapshot":             {Operation: "restore-snapshot", Kind: "change"},
		"POST /v1/orgs":                        {Operation: "create-organization", Kind: "change"},
		"GET /v1/orgs":                         {Operation: "list-organizations", Kind: "read"},
		"GET /v1/orgs/:org":                    {Operation: "get-organization", Kind: "read"},
		"PATCH /v1/orgs/:org":                  {Operation: "update-organization", Kind: "change"},
		"POST /v1/orgs/:org/tokens":            {Operation: "create-token", Kind: "change"},
		"GET /v1/orgs/:org/tokens":             {Operation: "list-tokens", Kind: "read"},
		"DELETE /v1/orgs/:org/tokens/:token":   {Operation: "revoke-token", Kind: "change"},
		"POST /v1/keys":                        {Operation: "create-key", Kind: "change"},
		"GET /v1/keys":                         {Operation: "list-keys", Kind: "read"},
		"GET /v1/keys/:id":                     {Operation: "get-key", Kind: "read"},
		"GET /v1/keys/:id/versions":            {Operation: "list-key-versions", Kind: "read"},
		"PATCH /v1/keys/:id":                   {Operation: "update-key", Kind: "change"},
		"POST /v1/keys/:id/enable":             {Operation: "enable-key", Kind: "change"},
		"POST /v1/keys/:id/disable":            {Operation: "disable-key", Kind: "change"},
		"POST /v1/keys/:id/protect":            {Operation: "protect-key", Kind: "change"},
		"POST /v1/keys/:id/unprotect":          {Operation: "unprotect-key", Kind: "change"},
		"POST /v1/keys/:id/cancel-deletion":    {Operation: "cancel-key-deletion", Kind: "change"},
		"POST /v1/keys/:id/rotate":             {Operation: "rotate-key", Kind: "change"},
		"POST /v1/keys/:id/schedule-deletion":  {Operation: "schedule-key-deletion", Kind: "change"},
		"POST /v1/keys/:id/replicas":           {Operation: "add-replica", Kind: "change"},
		"DELETE /v1/keys/:id/replicas/:zone":   {Operation: "remove-replica", Kind: "change"},
		"POST /v1/keys/:id/update-primary":     {Operation: "update-primary", Kind: "change"},
		"GET /v1/keys/:id/import-parameters":   {Operation: "get-import-parameters", Kind: "change"},
		"POST /v1/keys/:id/import":             {Operation: "import-key-material", Kind: "change"},
		"POST /v1/keys/:id/encrypt":            {Operation: "encrypt", Kind: "crypto"},
		"POST /v1/keys/:id/decrypt":            {Operation: "decrypt", Kind: "crypto"},
		"POST /v1/keys/:id/generate-data-key":  {Operation: "generate-data-key", Kind: "crypto"},
		"POST /v1/keys/:id/re-encrypt":         {Operation: "re-encrypt", Kind: "crypto"},
		"POST /v1/decrypt":                     {Operation: "decrypt", Kind: "crypto"},
		"POST /v1/re-encrypt":                  {Operation: "re-encrypt", Kind: "crypto"},
	}
	callers := map[string]string{
		"GET /v1/whoami": any, "GET /v1/cluster/status": any, "GET /v1/zones": any, "GET /v1/orgs/:org": any,
		"POST /v1/orgs/:org/tokens":          "operator,org-admin",
		"GET /v1/orgs/:org/tokens":           "operator,org-admin,auditor",
		"DELETE /v1/orgs/:org/tokens/:token": "operator,org-admin",
		"GET /v1/keys":                       readers, "GET /v1/keys/:id": readers, "GET /v1/keys/:id/versions": readers,
	}
	for r, p := range want {
		switch {
		case callers[r] != "":
		case strings.Contains(r, "/cluster/") || strings.HasPrefix(r, "POST /v1/orgs") || r == "GET /v1/orgs" || r == "PATCH /v1/orgs/:org":
			callers[r] = op
		case p.Kind == "crypto":
			callers[r] = crypto
		default:
			callers[r] = admins
		}
	}

	cfg := api.Config{
		Keys: apitest.NewKeys(), Cluster: apitest.NewCluster(), Tenants: apitest.NewTenants(), OperatorToken: operatorToken,
		Internal: http.NotFoundHandler(), Metrics: http.NotFoundHandler(),
	}
	routes, policies, err := api.RoutesAndPolicies(cfg)
	if err != nil {
		t.Fatal(err)
	}
	public := func(r string) bool {
		return r == "GET /v1/health" || r == "GET /v1/health/live" || r == "GET /metrics" || strings.HasSuffix(r, " /v1/internal/*path")
	}
	served := map[string]bool{}
	for _, r := range routes {
		served[r] = true
		if public(r) {
			continue
		}
		p, ok := policies[r]
		if !ok {
			t.Errorf("route %s has no policy", r)
			continue
		}
		w, ok := want[r]
		if !ok {
			t.Errorf("route %s is not in the test's table (policy %+v)", r, p)
			continue
		}
		if p.Operation != w.Operation || p.Kind != w.Kind || p.CallersString() != callers[r] {
			t.Errorf("%s: got callers %s, operation %s, kind %s; want %s, %s, %s",
				r, p.CallersString(), p.Operation, p.Kind, callers[r], w.Operation, w.Kind)
		}
	}
	for r := range policies {
		if !served[r] {
			t.Errorf("policy for %s, which gin does not serve", r)
		}
	}
	for r := range want {
		if !served[r] {
			t.Errorf("route %s of the table is not served", r)
		}
	}
	for _, r := range []string{"GET /v1/health", "GET /v1/health/live", "GET /metrics"} {
		if !served[r] {
			t.Errorf("public route %s is not served", r)
		}
	}
}

// TestAuthz_RoleMatrix calls a representative route of each class with
// each role's token and the operator's: a caller the policy names gets a
// 2xx, any other 403 forbidden (never a 404 or a 401 that would hide the
// reason), before the handler runs.
func TestAuthz_RoleMatrix(t *testing.T) {
	const (
		opr = "operator"
		oa  = "org-admin"
		ka  = "key-admin"
		cu  = "crypto-user"
		au  = "auditor"
	)
	secrets := map[string]string{opr: operatorToken, oa: testToken, ka: keyAdminToken, cu: cryptoUserToken, au: auditorToken}
	everyone := []string{opr, oa, ka, cu, au}
	cases := []struct {
		method, path, body string
		allowed            []string
	}{
		{"GET", "/v1/whoami", "", everyone},
		{"GET", "/v1/cluster/status", "", everyone},
		{"GET", "/v1/zones", "", everyone},
		{"GET", "/v1/cluster/peers", "", []string{opr}},
		{"GET", "/v1/cluster/digest", "", []string{opr}},
		{"POST", "/v1/cluster/transfer-leadership", `{"node_id":"node-2"}`, []string{opr}},

		{"POST", "/v1/orgs", `{"name":"new-org"}`, []string{opr}},
		{"GET", "/v1/orgs", "", []string{opr}},
		{"PATCH", "/v1/orgs/default", `{"key_quota":5}`, []string{opr}},
		{"GET", "/v1/orgs/default", "", everyone},
		{"POST", "/v1/orgs/default/tokens", `{"role":"auditor"}`, []string{opr, oa}},
		{"GET", "/v1/orgs/default/tokens", "", []string{opr, oa, au}},
		{"DELETE", "/v1/orgs/default/tokens/{victim}", "", []string{opr, oa}},

		{"POST", "/v1/keys", `{"name":"new-key"}`, []string{oa, ka}},
		{"GET", "/v1/keys", "", []string{oa, ka, au}},
		{"GET", "/v1/keys/{key}", "", []string{oa, ka, au}},
		{"GET", "/v1/keys/{key}/versions", "", []string{oa, ka, au}},
		{"PATCH", "/v1/keys/{key}", `{"description":"changed"}`, []string{oa, ka}},
		{"POST", "/v1/keys/{key}/rotate", "", []string{oa, ka}},
		{"POST", "/v1/keys/{key}/disable", "", []string{oa, ka}},
		{"POST", "/v1/keys/{key}/schedule-deletion", `{}`, []string{oa, ka}},

		{"POST", "/v1/keys/{key}/encrypt", `{"plaintext":"aGk="}`, []string{oa, cu}},
		{"POST", "/v1/keys/{key}/decrypt", `{"ciphertext":"{ct}"}`, []string{oa, cu}},
		{"POST", "/v1/decrypt", `{"ciphertext":"{ct}"}`, []string{oa, cu}},
		{"POST", "/v1/keys/{key}/generate-data-key", `{}`, []string{oa, cu}},
		{"POST", "/v1/keys/{key}/re-encrypt", `{"ciphertext":"{ct}"}`, []string{oa, cu}},
		{"POST", "/v1/re-encrypt", `{"ciphertext":"{ct}"}`, []string{oa, cu}},
	}
	for _, tc := range cases {
		for _, who := range everyone {
			t.Run(who+" "+tc.method+" "+tc.path, func(t *testing.T) {
				e := roleEnv(t)
				victim := e.tenants.AddToken("s3cret-victim-token", fsm.DefaultOrganization, fsm.RoleCryptoUser)
				k := e.createKey(t, "matrix")
				ct := e.encryptAs(t, testToken, k.ID, "matrix plaintext").Ciphertext
				r := strings.NewReplacer("{key}", k.ID, "{victim}", victim.ID, "{ct}", b64s(ct))
				before := len(e.keys.Calls())
				rec := e.as(t, secrets[who], tc.method, r.Replace(tc.path), r.Replace(tc.body))
				if slices.Contains(tc.allowed, who) {
					if rec.Code < 200 || rec.Code > 299 {
						t.Errorf("got %d %s, want a 2xx", rec.Code, rec.Body)
					}
					return
				}
				if b := apiError(t, rec, http.StatusForbidden); b.Code != wire.CodeForbidden {
					t.Errorf("got %+v, want code %s", b, wire.CodeForbidden)
				}
				if calls := e.keys.Calls()[before:]; len(calls) != 0 {
					t.Errorf("a refused call reached the key service: %+v", calls)
				}
			})
		}
	}
}

// TestAuthz_OrgAdminOwnOrganizationOnly: an org-admin manages its own
// organization's tokens (by id or by name); another organization's id or
// name answers exactly like one that does not exist, on every token route
// and on the organization itself.
func TestAuthz_OrgAdminOwnOrganizationOnly(t *testing.T) {
	e := newEnv(t)
	rec := e.asOperator(t, "POST", "/v1/orgs", `{"name":"acme"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create organization: got %d %s", rec.Code, rec.Body)
	}
	other := decode[wire.Organization](t, rec)
	if other.ID == other.Name {
		t.Fatalf("the fake gave the organization its name as id: %+v", other)
	}
	otherTok := e.tenants.AddToken("s3cret-other-org-admin", other.ID, fsm.RoleOrgAdmin)

	if rec := e.do(t, "GET", "/v1/orgs/default/tokens", ""); rec.Code != http.StatusOK {
		t.Fatalf("own tokens: got %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"crypto-user"}`); rec.Code != http.StatusCreated {
		t.Fatalf("own token create: got %d %s", rec.Code, rec.Body)
	}

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/orgs/{org}", ""},
		{"GET", "/v1/orgs/{org}/tokens", ""},
		{"POST", "/v1/orgs/{org}/tokens", `{"role":"org-admin"}`},
		{"DELETE", "/v1/orgs/{org}/tokens/" + otherTok.ID, ""},
	} {
		var bodies []string
		for _, ref := range []string{other.ID, other.Name, "no-such-org"} {
			rec := e.do(t, tc.method, strings.ReplaceAll(tc.path, "{org}", ref), tc.body)
			b := apiError(t, rec, http.StatusNotFound)
			if b.Code != wire.CodeOrganizationNotFound {
				t.Errorf("%s %s as another org's admin: got %+v, want %s", tc.method, ref, b, wire.CodeOrganizationNotFound)
			}
			bodies = append(bodies, strings.ReplaceAll(rec.Body.String(), ref, "{org}"))
		}
		for _, got := range bodies[:2] {
			if got != bodies[2] {
				t.Errorf("%s %s: another organization answers %s, a missing one %s", tc.method, tc.path, got, bodies[2])
			}
		}
	}
	// Nothing changed in the other organization.
	toks, _ := e.tenants.ListTokens(t.Context(), other.ID)
	if len(toks) != 1 || toks[0].Revoked() {
		t.Errorf("other organization's tokens: got %+v, want its one live token", toks)
	}
	// The operator sees every organization.
	if rec := e.asOperator(t, "GET", "/v1/orgs/acme/tokens", ""); rec.Code != http.StatusOK {
		t.Errorf("operator: got %d %s", rec.Code, rec.Body)
	}
}

// TestAuthn_Refused: a missing, malformed, unknown, revoked or expired
// token is 401 with the same body and a WWW-Authenticate challenge.
func TestAuthn_Refused(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.tenants.Now = func() time.Time { return now }

	// A token to revoke and one that expires in an hour.
	revoked := decode[wire.CreatedToken](t, e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"auditor"}`))
	expiring := decode[wire.CreatedToken](t, e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"auditor","expires_in":"1h"}`))
	for _, s := range []string{revoked.Secret, expiring.Secret} {
		if rec := e.as(t, s, "GET", "/v1/keys", ""); rec.Code != http.StatusOK {
			t.Fatalf("live token: got %d %s", rec.Code, rec.Body)
		}
	}
	if rec := e.do(t, "DELETE", "/v1/orgs/default/tokens/"+revoked.ID, ""); rec.Code != http.StatusOK {
		t.Fatalf("revoke: got %d %s", rec.Code, rec.Body)
	}
	now = now.Add(time.Hour)

	var bodies []string
	for _, tc := range []struct{ name, header string }{
		{"missing", ""},
		{"scheme only", "Bearer"},
		{"blank token", "Bearer    "},
		{"other scheme", "Basic " + testToken},
		{"no scheme", testToken},
		{"unknown", "Bearer not-a-token"},
		{"operator token prefix", "Bearer " + operatorToken[:len(operatorToken)-1]},
		{"revoked", "Bearer " + revoked.Secret},
		{"expired", "Bearer " + expiring.Secret},
	} {
		rec := e.do(t, "GET", "/v1/keys", "", "Authorization", tc.header)
		b := apiError(t, rec, http.StatusUnauthorized)
		if b.Code != wire.CodeUnauthorized {
			t.Errorf("%s: got %+v, want %s", tc.name, b, wire.CodeUnauthorized)
		}
		if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
			t.Errorf("%s: WWW-Authenticate %q, want Bearer", tc.name, got)
		}
		bodies = append(bodies, rec.Body.String())
	}
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Errorf("401 bodies differ: %s and %s", bodies[0], bodies[i])
		}
	}
	// The expiry is the fake's clock's: an hour less a second, it worked.
	now = now.Add(-time.Second)
	if rec := e.as(t, expiring.Secret, "GET", "/v1/keys", ""); rec.Code != http.StatusOK {
		t.Errorf("token before its expiry: got %d %s", rec.Code, rec.Body)
	}
}

// TestAuthz_CryptoUserRestricted: a crypto-user limited to key ids or
// tags uses those keys and gets 403 forbidden on any other key of its
// organization, whichever way the key is named (path, ciphertext,
// re-encrypt destination).
func TestAuthz_CryptoUserRestricted(t *testing.T) {
	e := newEnv(t)
	mine := e.createKey(t, "mine")
	tagged := decode[wire.Key](t, e.do(t, "POST", "/v1/keys", `{"name":"tagged","tags":["payments"]}`))
	other := e.createKey(t, "other")
	mineCT := b64s(e.encryptAs(t, testToken, mine.ID, "mine").Ciphertext)
	otherCT := b64s(e.encryptAs(t, testToken, other.ID, "other").Ciphertext)

	byID := decode[wire.CreatedToken](t, e.do(t, "POST", "/v1/orgs/default/tokens",
		`{"role":"crypto-user","key_ids":["`+mine.ID+`"]}`)).Secret
	byTag := decode[wire.CreatedToken](t, e.do(t, "POST", "/v1/orgs/default/tokens",
		`{"role":"crypto-user","tags":["payments"]}`)).Secret

	type call struct{ method, path, body string }
	allowedByID := []call{
		{"POST", "/v1/keys/" + mine.ID + "/encrypt", `{"plaintext":"aGk="}`},
		{"POST", "/v1/keys/" + mine.ID + "/decrypt", `{"ciphertext":"` + mineCT + `"}`},
		{"POST", "/v1/decrypt", `{"ciphertext":"` + mineCT + `"}`},
		{"POST", "/v1/keys/" + mine.ID + "/generate-data-key", `{}`},
		{"POST", "/v1/re-encrypt", `{"ciphertext":"` + mineCT + `"}`},
	}
	refusedByID := []call{
		{"POST", "/v1/keys/" + other.ID + "/encrypt", `{"plaintext":"aGk="}`},
		{"POST", "/v1/keys/" + other.ID + "/decrypt", `{"ciphertext":"` + otherCT + `"}`},
		{"POST", "/v1/decrypt", `{"ciphertext":"` + otherCT + `"}`},
		{"POST", "/v1/keys/" + other.ID + "/generate-data-key", `{}`},
		{"POST", "/v1/keys/" + other.ID + "/re-encrypt", `{"ciphertext":"` + otherCT + `"}`},
		{"POST", "/v1/re-encrypt", `{"ciphertext":"` + otherCT + `","destination_key_id":"` + mine.ID + `"}`},
		{"POST", "/v1/re-encrypt", `{"ciphertext":"` + mineCT + `","destination_key_id":"` + other.ID + `"}`},
	}
	for _, c := range allowedByID {
		if rec := e.as(t, byID, c.method, c.path, c.body); rec.Code != http.StatusOK {
			t.Errorf("key_ids token, %s %s: got %d %s, want 200", c.method, c.path, rec.Code, rec.Body)
		}
	}
	for _, c := range refusedByID {
		rec := e.as(t, byID, c.method, c.path, c.body)
		if b := apiError(t, rec, http.StatusForbidden); b.Code != wire.CodeForbidden {
			t.Errorf("key_ids token, %s %s %s: got %+v, want %s", c.method, c.path, c.body, b, wire.CodeForbidden)
		}
	}
	// The restriction reached the service as a filter.
	last := e.keys.LastCall()
	if p, ok := last.Params.(keys.ReEncryptParams); !ok || p.Allow == nil {
		t.Errorf("last call: got %+v, want ReEncrypt with a key filter", last)
	}

	if rec := e.as(t, byTag, "POST", "/v1/keys/"+tagged.ID+"/encrypt", `{"plaintext":"aGk="}`); rec.Code != http.StatusOK {
		t.Errorf("tags token, tagged key: got %d %s, want 200", rec.Code, rec.Body)
	}
	for _, id := range []string{mine.ID, other.ID} {
		rec := e.as(t, byTag, "POST", "/v1/keys/"+id+"/encrypt", `{"plaintext":"aGk="}`)
		if b := apiError(t, rec, http.StatusForbidden); b.Code != wire.CodeForbidden {
			t.Errorf("tags token, untagged key: got %+v, want %s", b, wire.CodeForbidden)
		}
	}
	// An unrestricted crypto-user and the org-admin use every key.
	for _, s := range []string{testToken, decode[wire.CreatedToken](t, e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"crypto-user"}`)).Secret} {
		if rec := e.as(t, s, "POST", "/v1/keys/"+other.ID+"/encrypt", `{"plaintext":"aGk="}`); rec.Code != http.StatusOK {
			t.Errorf("unrestricted token: got %d %s, want 200", rec.Code, rec.Body)
		}
	}
}

// TestAuthz_DefaultKeyAlias: "default" names the caller's organization's
// default key in a path and as a re-encrypt destination.
func TestAuthz_DefaultKeyAlias(t *testing.T) {
	e := roleEnv(t)
	e.keys.Put(fsm.Key{
		ID: apitest.DefaultKeyID, Organization: fsm.DefaultOrganization, Name: "default", State: fsm.KeyStateEnabled,
		Protected: true, CurrentVersion: 1, Versions: []fsm.Version{{Number: 1, State: fsm.VersionStateEnabled}},
		PrimaryZone: apitest.Zone, Revision: 1,
	})
	enc := e.encryptAs(t, cryptoUserToken, "default", "to the default key")
	if enc.KeyID != apitest.DefaultKeyID {
		t.Errorf("encrypt under default: key_id %q, want %q", enc.KeyID, apitest.DefaultKeyID)
	}
	if p := e.keys.LastCall().Params.(keys.EncryptParams); p.KeyID != apitest.DefaultKeyID {
		t.Errorf("the service was asked for key %q, want %q", p.KeyID, apitest.DefaultKeyID)
	}
	rec := e.as(t, cryptoUserToken, "POST", "/v1/keys/default/decrypt", `{"ciphertext":"`+b64s(enc.Ciphertext)+`"}`)
	if rec.Code != http.StatusOK || string(decode[wire.DecryptResponse](t, rec).Plaintext) != "to the default key" {
		t.Errorf("decrypt under default: got %d %s", rec.Code, rec.Body)
	}
	if k := decode[wire.Key](t, e.as(t, auditorToken, "GET", "/v1/keys/default", "")); k.ID != apitest.DefaultKeyID {
		t.Errorf("get default: id %q, want %q", k.ID, apitest.DefaultKeyID)
	}

	other := e.createKey(t, "other")
	ct := e.encryptAs(t, testToken, other.ID, "moved").Ciphertext
	rec = e.as(t, cryptoUserToken, "POST", "/v1/re-encrypt", `{"ciphertext":"`+b64s(ct)+`","destination_key_id":"default"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("re-encrypt to default: got %d %s", rec.Code, rec.Body)
	}
	if got := decode[wire.ReEncryptResponse](t, rec).KeyID; got != apitest.DefaultKeyID {
		t.Errorf("re-encrypt to default: key_id %q, want %q", got, apitest.DefaultKeyID)
	}
	if p := e.keys.LastCall().Params.(keys.ReEncryptParams); p.DestinationKeyID != apitest.DefaultKeyID {
		t.Errorf("re-encrypt destination given to the service: %q, want %q", p.DestinationKeyID, apitest.DefaultKeyID)
	}
	// Another organization's "default" is its own default key, never
	// this one: the fake's organizations share the id, but the key
	// belongs to "default" only, so it is not found.
	e.tenants.AddOrganization("other")
	e.tenants.AddToken("s3cret-other-crypto", "other", fsm.RoleCryptoUser)
	rec = e.as(t, "s3cret-other-crypto", "POST", "/v1/keys/default/encrypt", `{"plaintext":"aGk="}`)
	if b := apiError(t, rec, http.StatusNotFound); b.Code != wire.CodeKeyNotFound {
		t.Errorf("other organization's default: got %+v, want %s", b, wire.CodeKeyNotFound)
	}
	// An organization without a default key: "default" names no key.
	e.tenants.Org("other").DefaultKeyID = ""
	rec = e.as(t, "s3cret-other-crypto", "POST", "/v1/keys/default/encrypt", `{"plaintext":"aGk="}`)
	if b := apiError(t, rec, http.StatusNotFound); b.Code != wire.CodeKeyNotFound {
		t.Errorf("no default key: got %+v, want %s", b, wire.CodeKeyNotFound)
	}
	if p := e.keys.LastCall().Params.(keys.EncryptParams); p.KeyID != "default" {
		t.Errorf("no default key: the service was asked for %q, want \"default\" as given", p.KeyID)
	}
}

// TestRateLimit: an organization limited to 1 request/s with a burst of
// 2 gets 429 with Retry-After on its third quick request; the operator is
// never limited, and another organization keeps its own budget.
func TestRateLimit(t *testing.T) {
	// The server's default limit is tight too: the operator is exempt
	// from it, not merely under it.
	e := newEnv(t, func(c *api.Config) { c.OrgRateLimit, c.OrgRateBurst = 1, 1 })
	limited := e.tenants.Org(fsm.DefaultOrganization)
	limited.RateLimit, limited.RateBurst = 1, 2
	other := e.tenants.AddOrganization("other")
	other.RateLimit, other.RateBurst = 1, 3
	e.tenants.AddToken("s3cret-other-token", other.ID, fsm.RoleOrgAdmin)

	start := time.Now()
	for i := range 2 {
		if rec := e.do(t, "GET", "/v1/keys", ""); rec.Code != http.StatusOK {
			t.Fatalf("request %d: got %d %s", i+1, rec.Code, rec.Body)
		}
	}
	rec := e.do(t, "GET", "/v1/keys", "")
	if time.Since(start) > 900*time.Millisecond {
		t.Skip("the three requests took most of a second: the bucket refilled")
	}
	if b := apiError(t, rec, http.StatusTooManyRequests); b.Code != wire.CodeRateLimited {
		t.Errorf("third request: got %+v, want %s", b, wire.CodeRateLimited)
	}
	if n, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want a number of seconds >= 1", rec.Header().Get("Retry-After"))
	}
	// Every route of the organization shares the budget.
	if rec := e.do(t, "POST", "/v1/keys", `{"name":"k"}`); rec.Code != http.StatusTooManyRequests {
		t.Errorf("create while limited: got %d, want 429", rec.Code)
	}

	for i := range 10 {
		if rec := e.asOperator(t, "GET", "/v1/orgs", ""); rec.Code != http.StatusOK {
			t.Fatalf("operator request %d: got %d %s", i+1, rec.Code, rec.Body)
		}
	}
	for i := range 3 {
		if rec := e.as(t, "s3cret-other-token", "GET", "/v1/keys", ""); rec.Code != http.StatusOK {
			t.Fatalf("other organization, request %d: got %d %s", i+1, rec.Code, rec.Body)
		}
	}
}

// TestAuthz_UnknownRoleDenied: deny by default. A token whose role no
// policy names (a record from a newer version, or a corrupted one) is
// authenticated but refused on every route, whoami included.
func TestAuthz_UnknownRoleDenied(t *testing.T) {
	e := newEnv(t)
	e.tenants.AddToken("s3cret-odd-role", fsm.DefaultOrganization, fsm.Role("super-admin"))
	k := e.createKey(t, "k")
	for _, r := range [][2]string{
		{"GET", "/v1/whoami"}, {"GET", "/v1/zones"}, {"GET", "/v1/keys"}, {"GET", "/v1/keys/" + k.ID},
		{"POST", "/v1/keys/" + k.ID + "/encrypt"}, {"POST", "/v1/keys/" + k.ID + "/rotate"},
		{"GET", "/v1/orgs/default/tokens"}, {"GET", "/v1/cluster/peers"},
	} {
		rec := e.as(t, "s3cret-odd-role", r[0], r[1], `{"plaintext":"aGk="}`)
		if b := apiError(t, rec, http.StatusForbidden); b.Code != wire.CodeForbidden {
			t.Errorf("%s %s: got %+v, want %s", r[0], r[1], b, wire.CodeForbidden)
		}
	}
}

// TestAuthz_SnapshotOperatorOnly: the snapshot holds every organization's
// wrapped keys: only the operator saves or restores it.
func TestAuthz_SnapshotOperatorOnly(t *testing.T) {
	e := roleEnv(t)
	e.cluster.Archive = []byte("archive bytes")
	for _, s := range []string{testToken, keyAdminToken, cryptoUserToken, auditorToken} {
		for _, m := range []string{"GET", "PUT"} {
			if b := apiError(t, e.as(t, s, m, "/v1/cluster/snapshot", "x"), http.StatusForbidden); b.Code != wire.CodeForbidden {
				t.Errorf("%s snapshot with %s: got %+v, want %s", m, s, b, wire.CodeForbidden)
			}
		}
	}
	if e.cluster.Restored != nil {
		t.Error("a refused restore reached the cluster")
	}
	rec := e.asOperator(t, "GET", "/v1/cluster/snapshot", "")
	if rec.Code != http.StatusOK || rec.Body.String() != "archive bytes" {
		t.Errorf("operator save: got %d %q", rec.Code, rec.Body)
	}
	// The operator's restore reaches the cluster, which judges the archive.
	if b := apiError(t, e.asOperator(t, "PUT", "/v1/cluster/snapshot", "not an archive"), http.StatusBadRequest); b.Code != wire.CodeInvalidSnapshot {
		t.Errorf("operator restore of garbage: got %+v, want %s", b, wire.CodeInvalidSnapshot)
	}
}

// TestRouter_EveryRouteNeedsAToken: every route with a policy answers 401
// to a request without a token or with an unknown one, before anything
// reaches a service.
func TestRouter_EveryRouteNeedsAToken(t *testing.T) {
	e := newEnv(t)
	_, policies, err := api.RoutesAndPolicies(api.Config{
		Keys: apitest.NewKeys(), Cluster: apitest.NewCluster(), Tenants: apitest.NewTenants(), OperatorToken: operatorToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) < 30 {
		t.Fatalf("only %d routes with a policy", len(policies))
	}
	param := strings.NewReplacer(":id", "x", ":zone", "zone-b", ":org", "default", ":token", "tok001")
	for r := range policies {
		method, path, _ := strings.Cut(r, " ")
		for _, auth := range []string{"", "Bearer unknown-token"} {
			if rec := e.do(t, method, param.Replace(path), "{}", "Authorization", auth); rec.Code != http.StatusUnauthorized {
				t.Errorf("%s with Authorization %q: got %d, want 401", r, auth, rec.Code)
			}
		}
	}
	if calls := e.keys.Calls(); len(calls) != 0 {
		t.Errorf("unauthenticated calls reached the key service: %+v", calls)
	}
	if toks, _ := e.tenants.ListTokens(t.Context(), fsm.DefaultOrganization); len(toks) != 1 || toks[0].Revoked() {
		t.Errorf("unauthenticated calls changed tokens: %+v", toks)
	}
}

// TestAuthn_CatchingUp: a node that can't tell whether an unknown token
// exists (its state is catching up with its zone) answers 503 with
// Retry-After, never 401, which would tell the caller its token is bad;
// known tokens are served meanwhile.
func TestAuthn_CatchingUp(t *testing.T) {
	e := newEnv(t)
	e.tenants.CatchUpErr = errors.New("raft: no leader")
	rec := e.do(t, "GET", "/v1/whoami", "", "Authorization", "Bearer kzt_0123456789abcdef_unknown")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("unknown token while catching up: got %d %s (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	if body := rec.Body.String(); !strings.Contains(body, `"code":"unavailable"`) || strings.Contains(body, "no leader") {
		t.Errorf("body %s: want code unavailable and no internal detail", body)
	}
	if rec := e.do(t, "GET", "/v1/whoami", ""); rec.Code != http.StatusOK {
		t.Errorf("a known token while catching up: got %d", rec.Code)
	}
}
