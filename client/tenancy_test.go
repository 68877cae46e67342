package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// tenancyCall is one request the fake tenancy server received.
type tenancyCall struct {
	method, path, auth string
	body               map[string]any
}

// tenancyServer answers the organization and token routes of
// api/wire/tenancy.go with canned bodies, recording each call.
type tenancyServer struct {
	mu    sync.Mutex
	calls []tenancyCall
}

func (s *tenancyServer) last() tenancyCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[len(s.calls)-1]
}

func (s *tenancyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c := tenancyCall{method: r.Method, path: r.URL.EscapedPath(), auth: r.Header.Get("Authorization")}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &c.body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()

	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	org := wire.Organization{ID: "org1", Name: "acme", DefaultKeyID: "k0", HomeZone: "zone-a", KeyQuota: 1000, CreatedAt: created, UpdatedAt: created}
	tok := wire.Token{ID: "tok1", Organization: "org1", Role: "crypto-user", CreatedAt: created}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch r.Method + " " + c.path {
	case "POST /v1/orgs":
		org.Name = c.body["name"].(string)
		reply(http.StatusCreated, org)
	case "GET /v1/orgs":
		reply(http.StatusOK, wire.ListOrganizationsResponse{Organizations: []wire.Organization{org}})
	case "GET /v1/orgs/acme", "GET /v1/orgs/a%20b":
		reply(http.StatusOK, org)
	case "PATCH /v1/orgs/acme":
		org.KeyQuota = int(c.body["key_quota"].(float64))
		reply(http.StatusOK, org)
	case "POST /v1/orgs/acme/tokens":
		reply(http.StatusCreated, wire.CreatedToken{Token: tok, Secret: "kzt_tok1_secret"})
	case "GET /v1/orgs/acme/tokens":
		reply(http.StatusOK, wire.ListTokensResponse{Tokens: []wire.Token{tok}})
	case "DELETE /v1/orgs/acme/tokens/tok1":
		tok.RevokedAt = &created
		reply(http.StatusOK, tok)
	case "GET /v1/whoami":
		reply(http.StatusOK, wire.Principal{Organization: "org1", TokenID: "tok1", Role: "org-admin"})
	default:
		reply(http.StatusNotFound, wire.ErrorResponse{Error: wire.ErrorBody{Code: "organization_not_found", Message: "no such organization"}})
	}
}

func TestClient_Tenancy(t *testing.T) {
	s := &tenancyServer{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "op-token")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	org, err := c.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "acme", KeyQuota: 5})
	if err != nil || org.Name != "acme" || org.DefaultKeyID != "k0" {
		t.Fatalf("create: got %+v, %v", org, err)
	}
	if got := s.last(); got.method != "POST" || got.auth != "Bearer op-token" || got.body["key_quota"] != float64(5) || got.body["rate_limit"] != nil {
		t.Errorf("create request: got %+v (zero limits must be left out)", got)
	}
	list, err := c.ListOrganizations(ctx)
	if err != nil || len(list.Organizations) != 1 {
		t.Fatalf("list: got %+v, %v", list, err)
	}
	if _, err := c.GetOrganization(ctx, "a b"); err != nil {
		t.Errorf("get with a space: %v", err)
	}
	q := 7
	up, err := c.UpdateOrganization(ctx, "acme", wire.UpdateOrganizationRequest{KeyQuota: &q})
	if err != nil || up.KeyQuota != 7 {
		t.Fatalf("update: got %+v, %v", up, err)
	}
	if got := s.last(); got.method != "PATCH" || len(got.body) != 1 {
		t.Errorf("update request: got %+v, want only key_quota", got)
	}

	ct, err := c.CreateToken(ctx, "acme", wire.CreateTokenRequest{Role: "crypto-user", KeyIDs: []string{"default"}, ExpiresIn: "1h"})
	if err != nil || ct.Secret != "kzt_tok1_secret" || ct.ID != "tok1" || ct.Role != "crypto-user" {
		t.Fatalf("create token: got %+v, %v", ct, err)
	}
	if got := s.last(); got.body["role"] != "crypto-user" || got.body["expires_in"] != "1h" || got.body["tags"] != nil {
		t.Errorf("create token request: got %+v", got.body)
	}
	toks, err := c.ListTokens(ctx, "acme")
	if err != nil || len(toks.Tokens) != 1 || toks.Tokens[0].ID != "tok1" {
		t.Fatalf("list tokens: got %+v, %v", toks, err)
	}
	rev, err := c.RevokeToken(ctx, "acme", "tok1")
	if err != nil || rev.RevokedAt == nil {
		t.Fatalf("revoke: got %+v, %v", rev, err)
	}
	me, err := c.WhoAmI(ctx)
	if err != nil || me.Role != "org-admin" || me.Operator {
		t.Fatalf("whoami: got %+v, %v", me, err)
	}

	_, err = c.GetOrganization(ctx, "nope")
	apiErr(t, err, 404, "organization_not_found")

	// A value that would name another route is refused before sending.
	n := len(s.calls)
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := c.GetOrganization(ctx, bad); err == nil || !strings.Contains(err.Error(), "invalid organization") {
			t.Errorf("GetOrganization(%q): got %v", bad, err)
		}
		if _, err := c.RevokeToken(ctx, "acme", bad); err == nil || !strings.Contains(err.Error(), "invalid token id") {
			t.Errorf("RevokeToken(%q): got %v", bad, err)
		}
	}
	if _, err := c.CreateToken(ctx, "", wire.CreateTokenRequest{Role: "auditor"}); err == nil {
		t.Error("CreateToken without an organization: got nil error")
	}
	if len(s.calls) != n {
		t.Errorf("%d refused calls reached the server", len(s.calls)-n)
	}
}
