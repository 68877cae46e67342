package api_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
)

func TestTenancy_Organizations(t *testing.T) {
	e := newEnv(t)
	rec := e.asOperator(t, "POST", "/v1/orgs", `{"name":"acme","key_quota":5,"rate_limit":2.5,"rate_burst":4}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: got %d %s, want 201", rec.Code, rec.Body)
	}
	acme := decode[wire.Organization](t, rec)
	if acme.ID == "" || acme.Name != "acme" || acme.DefaultKeyID != apitest.DefaultKeyID || acme.HomeZone != apitest.Zone ||
		acme.KeyQuota != 5 || acme.RateLimit != 2.5 || acme.RateBurst != 4 || acme.CreatedAt.IsZero() {
		t.Errorf("created: got %+v", acme)
	}

	if b := apiError(t, e.asOperator(t, "POST", "/v1/orgs", `{"name":"acme"}`), http.StatusConflict); b.Code != wire.CodeOrganizationExists {
		t.Errorf("duplicate: got %+v, want %s", b, wire.CodeOrganizationExists)
	}
	for _, body := range []string{`{"name":"a b"}`, `{}`, `{"name":"x","quota":1}`, `{"name":`} {
		if b := apiError(t, e.asOperator(t, "POST", "/v1/orgs", body), http.StatusBadRequest); b.Code != wire.CodeInvalidArgument {
			t.Errorf("create %s: got %+v, want %s", body, b, wire.CodeInvalidArgument)
		}
	}

	list := decode[wire.ListOrganizationsResponse](t, e.asOperator(t, "GET", "/v1/orgs", ""))
	var names []string
	for _, o := range list.Organizations {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "acme,default" {
		t.Errorf("list: got %v, want acme,default", names)
	}

	for _, ref := range []string{acme.ID, "acme"} {
		rec := e.asOperator(t, "GET", "/v1/orgs/"+ref, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("get %s: got %d %s", ref, rec.Code, rec.Body)
		}
		if got := decode[wire.Organization](t, rec); got.ID != acme.ID || got.Name != "acme" {
			t.Errorf("get %s: got %+v", ref, got)
		}
	}
	if b := apiError(t, e.asOperator(t, "GET", "/v1/orgs/nope", ""), http.StatusNotFound); b.Code != wire.CodeOrganizationNotFound {
		t.Errorf("get missing: got %+v, want %s", b, wire.CodeOrganizationNotFound)
	}

	rec = e.asOperator(t, "PATCH", "/v1/orgs/acme", `{"key_quota":9,"rate_limit":-1}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("patch: got %d %s", rec.Code, rec.Body)
	}
	if got := decode[wire.Organization](t, rec); got.ID != acme.ID || got.KeyQuota != 9 || got.RateLimit != -1 || got.RateBurst != 4 {
		t.Errorf("patched: got %+v, want quota 9, rate -1, burst left at 4", got)
	}
	if got := decode[wire.Organization](t, e.asOperator(t, "GET", "/v1/orgs/"+acme.ID, "")); got.KeyQuota != 9 {
		t.Errorf("after patch: got %+v", got)
	}
	if b := apiError(t, e.asOperator(t, "PATCH", "/v1/orgs/acme", `{"name":"renamed"}`), http.StatusBadRequest); b.Code != wire.CodeInvalidArgument {
		t.Errorf("patch an unknown field: got %+v", b)
	}
	if b := apiError(t, e.asOperator(t, "PATCH", "/v1/orgs/nope", `{"key_quota":1}`), http.StatusNotFound); b.Code != wire.CodeOrganizationNotFound {
		t.Errorf("patch missing: got %+v", b)
	}

	// An organization's token sees its own organization only.
	if got := decode[wire.Organization](t, e.do(t, "GET", "/v1/orgs/default", "")); got.ID != fsm.DefaultOrganization {
		t.Errorf("own organization: got %+v", got)
	}
}

func TestTenancy_Tokens(t *testing.T) {
	e := newEnv(t)
	before := time.Now()
	rec := e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"crypto-user","expires_in":"24h","description":"ci"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: got %d %s, want 201", rec.Code, rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	tok := decode[wire.CreatedToken](t, rec)
	if tok.ID == "" || tok.Secret == "" || tok.Organization != fsm.DefaultOrganization || tok.Role != "crypto-user" ||
		tok.Description != "ci" || tok.ExpiresAt == nil || tok.ExpiresAt.Before(before.Add(24*time.Hour)) || tok.RevokedAt != nil {
		t.Errorf("created: got %+v", tok)
	}
	me := decode[wire.Principal](t, e.as(t, tok.Secret, "GET", "/v1/whoami", ""))
	if me != (wire.Principal{Organization: fsm.DefaultOrganization, TokenID: tok.ID, Role: "crypto-user"}) {
		t.Errorf("whoami with the new secret: got %+v", me)
	}
	if me := decode[wire.Principal](t, e.asOperator(t, "GET", "/v1/whoami", "")); me != (wire.Principal{Operator: true, Role: "operator"}) {
		t.Errorf("whoami as operator: got %+v", me)
	}

	// The operator creates tokens of any organization.
	if rec := e.asOperator(t, "POST", "/v1/orgs/default/tokens", `{"role":"auditor"}`); rec.Code != http.StatusCreated {
		t.Errorf("operator create: got %d %s", rec.Code, rec.Body)
	}

	rec = e.do(t, "GET", "/v1/orgs/default/tokens", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("list: got %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), tok.Secret) || strings.Contains(rec.Body.String(), `"secret"`) ||
		strings.Contains(rec.Body.String(), testToken) {
		t.Errorf("the list holds a secret: %s", rec.Body)
	}
	list := decode[wire.ListTokensResponse](t, rec).Tokens
	if len(list) != 3 {
		t.Fatalf("list: got %+v, want 3 tokens (org-admin, crypto-user, auditor)", list)
	}
	if got := list[1]; got.ID != tok.ID || got.Role != "crypto-user" || got.ExpiresAt == nil {
		t.Errorf("listed: got %+v", got)
	}

	rec = e.do(t, "DELETE", "/v1/orgs/default/tokens/"+tok.ID, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("revoke: got %d %s", rec.Code, rec.Body)
	}
	if got := decode[wire.Token](t, rec); got.ID != tok.ID || got.RevokedAt == nil {
		t.Errorf("revoked: got %+v", got)
	}
	if b := apiError(t, e.as(t, tok.Secret, "GET", "/v1/whoami", ""), http.StatusUnauthorized); b.Code != wire.CodeUnauthorized {
		t.Errorf("revoked token: got %+v", b)
	}
	if b := apiError(t, e.do(t, "DELETE", "/v1/orgs/default/tokens/tok999", ""), http.StatusNotFound); b.Code != wire.CodeTokenNotFound {
		t.Errorf("revoke unknown: got %+v, want %s", b, wire.CodeTokenNotFound)
	}

	for _, body := range []string{
		`{"role":"root"}`, `{}`,
		`{"role":"auditor","expires_in":"soon"}`, `{"role":"auditor","expires_in":"-1h"}`, `{"role":"auditor","expires_in":"0s"}`,
		`{"role":"auditor","secret":"mine"}`,
	} {
		if b := apiError(t, e.do(t, "POST", "/v1/orgs/default/tokens", body), http.StatusBadRequest); b.Code != wire.CodeInvalidArgument {
			t.Errorf("create %s: got %+v, want %s", body, b, wire.CodeInvalidArgument)
		}
	}
}

// homeForwarder records the requests it forwards and answers them as the
// home zone would, or fails with err.
type homeForwarder struct {
	mu    sync.Mutex
	calls []forwarded
	err   error
}

type forwarded struct {
	zone, method, path, from, auth string
	body, readBody                 string
}

func (f *homeForwarder) Forward(w http.ResponseWriter, r *http.Request, zone string, body []byte) error {
	rb, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, forwarded{zone: zone, method: r.Method, path: r.URL.Path, from: r.Header.Get("X-Keyzone-Forwarded-From"),
		auth: r.Header.Get("Authorization"), body: string(body), readBody: string(rb)})
	f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"from":"the home zone"}`)
	return nil
}

func (f *homeForwarder) recorded() []forwarded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]forwarded(nil), f.calls...)
}

// TestTenancy_ForwardToHome: in a zone other than the home zone, changes
// of organizations and tokens go to the home zone with their body and
// token intact and its answer is relayed; reads are served here; an
// unreachable home zone is 503 with Retry-After and nothing changes here.
func TestTenancy_ForwardToHome(t *testing.T) {
	f := &homeForwarder{}
	e := newEnv(t, func(c *api.Config) { c.Zone, c.HomeZone, c.Forwarder = "zone-b", "zone-a", f })
	victim := e.tenants.AddToken("s3cret-victim-token", fsm.DefaultOrganization, fsm.RoleAuditor)

	changes := []struct{ secret, method, path, body string }{
		{operatorToken, "POST", "/v1/orgs", `{"name":"acme",  "key_quota":5}`},
		{operatorToken, "PATCH", "/v1/orgs/default", `{"rate_limit":3}`},
		{testToken, "POST", "/v1/orgs/default/tokens", `{"role":"crypto-user","key_ids":["default"]}`},
		{testToken, "DELETE", "/v1/orgs/default/tokens/" + victim.ID, ""},
	}
	for _, c := range changes {
		rec := e.as(t, c.secret, c.method, c.path, c.body)
		if rec.Code != http.StatusCreated || rec.Body.String() != `{"from":"the home zone"}` {
			t.Errorf("%s %s: got %d %s, want the home zone's answer", c.method, c.path, rec.Code, rec.Body)
		}
	}
	got := f.recorded()
	if len(got) != len(changes) {
		t.Fatalf("forwarded %d requests, want %d: %+v", len(got), len(changes), got)
	}
	for i, c := range changes {
		want := forwarded{zone: "zone-a", method: c.method, path: c.path, from: "zone-b", auth: "Bearer " + c.secret, body: c.body, readBody: c.body}
		if got[i] != want {
			t.Errorf("forward %d: got %+v, want %+v", i, got[i], want)
		}
	}
	// Nothing changed here: the home zone writes.
	if _, err := e.tenants.Organization(t.Context(), "acme"); err == nil {
		t.Error("the organization was created in this zone too")
	}
	if toks, _ := e.tenants.ListTokens(t.Context(), fsm.DefaultOrganization); len(toks) != 2 || toks[1].Revoked() {
		t.Errorf("tokens changed in this zone: %+v", toks)
	}

	// Reads are served from this zone's replicated records.
	if rec := e.asOperator(t, "GET", "/v1/orgs", ""); rec.Code != http.StatusOK {
		t.Errorf("list here: got %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(t, "GET", "/v1/orgs/default/tokens", ""); rec.Code != http.StatusOK {
		t.Errorf("list tokens here: got %d %s", rec.Code, rec.Body)
	}
	// Refused callers are refused here, not forwarded.
	e.as(t, "wrong", "POST", "/v1/orgs", `{"name":"x"}`)
	e.do(t, "POST", "/v1/orgs", `{"name":"x"}`)
	if n := len(f.recorded()); n != len(changes) {
		t.Errorf("forwarded %d requests, want still %d", n, len(changes))
	}
	// A request the home zone's peer forwarded is not sent on again.
	if rec := e.asOperator(t, "POST", "/v1/orgs", `{"name":"loop"}`, "X-Keyzone-Forwarded-From", "zone-c"); rec.Code != http.StatusCreated {
		t.Errorf("already forwarded: got %d %s, want it served here", rec.Code, rec.Body)
	}
	if n := len(f.recorded()); n != len(changes) {
		t.Errorf("an already forwarded request was forwarded again")
	}

	f.err = fmt.Errorf("zone zone-a: %w", api.ErrZoneUnreachable)
	for _, c := range changes[:3] {
		rec := e.as(t, c.secret, c.method, c.path, c.body)
		b := apiError(t, rec, http.StatusServiceUnavailable)
		if b.Code != wire.CodeUnavailable || !strings.Contains(b.Message, "zone-a") {
			t.Errorf("%s %s, home zone unreachable: got %+v, want %s naming zone-a", c.method, c.path, b, wire.CodeUnavailable)
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s, home zone unreachable: no Retry-After", c.method, c.path)
		}
	}
	if _, err := e.tenants.Organization(t.Context(), "acme"); err == nil {
		t.Error("the organization was created here while the home zone was away")
	}
	// A forward that may have reached the home zone has an unknown
	// outcome: 503, and no advice to retry blindly (tenancy changes take
	// no Idempotency-Key).
	f.err = errors.New("forward to a1: read: connection reset by peer")
	rec := e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"auditor"}`)
	b := apiError(t, rec, http.StatusServiceUnavailable)
	if b.Code != wire.CodeUnavailable || !strings.Contains(b.Message, "home zone zone-a") || strings.Contains(b.Message, "Idempotency-Key") {
		t.Errorf("outcome unknown: got %+v", b)
	}
	// Tokens keep working while the home zone is away.
	if rec := e.do(t, "GET", "/v1/keys", ""); rec.Code != http.StatusOK {
		t.Errorf("a key call while the home zone is away: got %d", rec.Code)
	}
}

// TestTenancy_HomeZoneServesChanges: in the home zone (or with no zones),
// changes are not forwarded even with a forwarder.
func TestTenancy_HomeZoneServesChanges(t *testing.T) {
	for _, zones := range [][2]string{{"zone-a", "zone-a"}, {"zone-a", ""}, {"", ""}} {
		f := &homeForwarder{}
		e := newEnv(t, func(c *api.Config) { c.Zone, c.HomeZone, c.Forwarder = zones[0], zones[1], f })
		if rec := e.asOperator(t, "POST", "/v1/orgs", `{"name":"acme"}`); rec.Code != http.StatusCreated {
			t.Errorf("zone %q, home %q: got %d %s, want 201", zones[0], zones[1], rec.Code, rec.Body)
		}
		if n := len(f.recorded()); n != 0 {
			t.Errorf("zone %q, home %q: forwarded %d", zones[0], zones[1], n)
		}
	}
}
