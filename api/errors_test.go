package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

func TestAPI_ErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		message    string // "" means the error's own text
		retryAfter bool
	}{
		{name: "invalid argument", err: fmt.Errorf("name: too long: %w", keys.ErrInvalidArgument), status: 400, code: "invalid_argument"},
		{name: "invalid command", err: fsm.ErrInvalidCommand, status: 400, code: "invalid_argument"},
		{name: "not found", err: fmt.Errorf("key x: %w", fsm.ErrKeyNotFound), status: 404, code: "key_not_found"},
		{name: "exists", err: fsm.ErrKeyExists, status: 409, code: "key_exists"},
		{name: "revision mismatch", err: fsm.ErrRevisionMismatch, status: 412, code: "revision_mismatch"},
		{name: "version conflict", err: fsm.ErrVersionConflict, status: 409, code: "version_conflict"},
		{name: "protected", err: fsm.ErrKeyProtected, status: 409, code: "key_protected"},
		{name: "transition", err: fmt.Errorf("rotate: %w", &fsm.TransitionError{KeyID: "k1", From: fsm.KeyStateDisabled, Op: "rotate"}), status: 409, code: "invalid_state"},
		{name: "not primary", err: fmt.Errorf("disable key: %w", &fsm.NotPrimaryError{KeyID: "k1", PrimaryZone: "zone-b"}), status: 409, code: "not_primary",
			message: "key k1 is a replica; make lifecycle changes in its primary zone zone-b"},
		{name: "rotation pending", err: fmt.Errorf("rotate key k1: version 3 waits for zones zone-b, zone-c: %w", fsm.ErrRotationPending), status: 409, code: "rotation_pending"},
		{name: "change gap", err: fmt.Errorf("changes of zone zone-b after 4, applied 2: %w", fsm.ErrChangeGap), status: 503, code: "unavailable",
			message: "replication between zones is catching up, retry later", retryAfter: true},
		{name: "key disabled", err: fmt.Errorf("key k1 is disabled: %w", keys.ErrKeyDisabled), status: 409, code: "key_disabled"},
		{name: "decrypt", err: fmt.Errorf("version 7 of key k1 with context abc: %w", kzcrypto.ErrDecrypt), status: 422, code: "decrypt_failed", message: "decryption failed"},
		{name: "payload too large", err: kzcrypto.ErrPayloadTooLarge, status: 413, code: "payload_too_large"},
		{name: "no leader", err: fmt.Errorf("propose: %w", cluster.ErrNoLeader), status: 503, code: "unavailable", message: "no raft leader, retry later", retryAfter: true},
		{name: "leadership lost", err: cluster.ErrLeadershipLost, status: 503, code: "unavailable", message: "leadership lost while committing: the outcome is unknown, retry with the same Idempotency-Key", retryAfter: true},
		{name: "shutdown", err: cluster.ErrShutdown, status: 503, code: "unavailable", message: "node is shutting down, retry on another node", retryAfter: true},
		{name: "raft timeout", err: cluster.ErrTimeout, status: 504, code: "timeout", message: "timed out waiting for raft"},
		{name: "deadline", err: fmt.Errorf("read: %w", context.DeadlineExceeded), status: 504, code: "timeout", message: "request timed out"},
		{name: "canceled", err: context.Canceled, status: 499, code: "canceled", message: "request canceled"},
		{name: "key not allowed", err: fmt.Errorf("key k1: %w", keys.ErrKeyNotAllowed), status: 403, code: "forbidden"},
		{name: "unauthenticated", err: keys.ErrUnauthenticated, status: 401, code: "unauthorized", message: "missing or invalid bearer token"},
		{name: "quota", err: fmt.Errorf("key k2 of organization o1: 5 keys in zone-a, quota 5: %w", fsm.ErrQuotaExceeded), status: 409, code: "quota_exceeded"},
		{name: "default key", err: fmt.Errorf("schedule deletion of k1: %w", fsm.ErrDefaultKey), status: 409, code: "default_key"},
		{name: "organization not found", err: fmt.Errorf("organization o9: %w", fsm.ErrOrganizationNotFound), status: 404, code: "organization_not_found"},
		{name: "organization exists", err: fmt.Errorf("organization acme: %w", fsm.ErrOrganizationExists), status: 409, code: "organization_exists"},
		{name: "token not found", err: fmt.Errorf("token t1: %w", fsm.ErrTokenNotFound), status: 404, code: "token_not_found"},
		{name: "not home zone", err: fmt.Errorf("this is zone zone-b, the home zone is zone-a: %w", keys.ErrNotHomeZone), status: 503, code: "unavailable", retryAfter: true},
		{name: "other", err: errors.New("bolt: disk on fire at /var/lib/secret"), status: 500, code: "internal", message: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.keys.Fail = func(string) error { return tt.err }
			rec := e.do(t, "GET", "/v1/keys/k1", "")
			body := apiError(t, rec, tt.status)
			want := tt.message
			if want == "" {
				want = tt.err.Error()
			}
			if body.Code != tt.code || body.Message != want {
				t.Errorf("body: got %+v, want code %q message %q", body, tt.code, want)
			}
			if got := rec.Header().Get("Retry-After"); (got == "1") != tt.retryAfter {
				t.Errorf("Retry-After: got %q, want set %v", got, tt.retryAfter)
			}
			logs := e.logs.String()
			switch {
			case tt.status == 500:
				if !strings.Contains(logs, "[ERROR]") || !strings.Contains(logs, tt.err.Error()) {
					t.Errorf("500 not logged at Error with its cause: %s", logs)
				}
			case tt.status < 500:
				if strings.Contains(logs, "[ERROR]") || strings.Contains(logs, "[WARN]") {
					t.Errorf("4xx logged above Debug: %s", logs)
				}
			}
		})
	}
}

func TestAPI_ErrorMapping_ClusterStatus(t *testing.T) {
	e := newEnv(t)
	e.cluster.StatusErr = cluster.ErrNoLeader
	rec := e.do(t, "GET", "/v1/cluster/status", "")
	if body := apiError(t, rec, http.StatusServiceUnavailable); body.Code != wire.CodeUnavailable {
		t.Errorf("code: got %q", body.Code)
	}
}

func TestAPI_ErrorMapping_Zones(t *testing.T) {
	e := newEnv(t)
	e.cluster.ZonesErr = fmt.Errorf("zones: %w", cluster.ErrShutdown)
	rec := e.do(t, "GET", "/v1/zones", "")
	if body := apiError(t, rec, http.StatusServiceUnavailable); body.Code != wire.CodeUnavailable {
		t.Errorf("code: got %q", body.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
}

func TestAPI_Auth(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		header string // "" sends none
		status int
	}{
		{"missing", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"token prefix", "Bearer " + testToken[:5], 401},
		{"token plus suffix", "Bearer " + testToken + "x", 401},
		{"wrong scheme", "Basic " + testToken, 401},
		{"bare token", testToken, 401},
		{"right", "Bearer " + testToken, 200},
		{"scheme case-insensitive", "bearer " + testToken, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, "GET", "/v1/keys", "", "Authorization", tt.header)
			if rec.Code != tt.status {
				t.Fatalf("status: got %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status == 401 {
				if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
					t.Errorf("WWW-Authenticate: got %q, want Bearer", got)
				}
				if body := apiError(t, rec, 401); body.Code != wire.CodeUnauthorized {
					t.Errorf("code: got %q", body.Code)
				}
			}
		})
	}
	// Every /v1 route but health needs the token, even before the body is read.
	for _, r := range [][2]string{{"POST", "/v1/keys"}, {"POST", "/v1/decrypt"}, {"GET", "/v1/cluster/status"}, {"POST", "/v1/keys/x/rotate"},
		{"GET", "/v1/zones"}, {"POST", "/v1/keys/x/replicas"}, {"DELETE", "/v1/keys/x/replicas/zone-b"}} {
		if rec := e.do(t, r[0], r[1], "{}", "Authorization", ""); rec.Code != 401 {
			t.Errorf("%s %s without token: got %d, want 401", r[0], r[1], rec.Code)
		}
	}
	if calls := e.keys.Calls(); len(calls) != 2 {
		t.Errorf("service calls: got %d, want 2 (the authorized lists)", len(calls))
	}
	if rec := e.do(t, "GET", "/v1/health", "", "Authorization", ""); rec.Code != 200 {
		t.Errorf("health without token: got %d, want 200", rec.Code)
	}
}

func TestAPI_PanicBecomes500(t *testing.T) {
	e := newEnv(t)
	e.keys.Fail = func(string) error { panic("boom: secret detail") }
	rec := e.do(t, "POST", "/v1/keys", `{"name":"x"}`)
	body := apiError(t, rec, http.StatusInternalServerError)
	if body.Code != "internal" || body.Message != "internal error" {
		t.Errorf("body: got %+v", body)
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("response leaks the panic: %s", rec.Body)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "[ERROR]") || !strings.Contains(logs, "boom: secret detail") {
		t.Errorf("panic not logged at Error: %s", logs)
	}
	// The router keeps serving.
	e.keys.Fail = nil
	if rec := e.do(t, "GET", "/v1/keys", ""); rec.Code != 200 {
		t.Errorf("after panic: got %d", rec.Code)
	}
}

func TestAPI_NotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/nope", "/v1/nope", "/v1/keys/", "/v1/keys/x/explode", "/v2/keys"} {
		body := apiError(t, e.do(t, "GET", p, ""), http.StatusNotFound)
		if body.Code != wire.CodeNotFound {
			t.Errorf("%s: code got %q", p, body.Code)
		}
	}
	rec := e.do(t, "DELETE", "/v1/keys/x", "")
	body := apiError(t, rec, http.StatusMethodNotAllowed)
	if body.Code != wire.CodeMethodNotAllowed {
		t.Errorf("code: got %q", body.Code)
	}
	if got := rec.Header().Get("Allow"); !strings.Contains(got, "GET") || !strings.Contains(got, "PATCH") {
		t.Errorf("Allow: got %q, want GET and PATCH", got)
	}
	apiError(t, e.do(t, "GET", "/v1/keys/x/encrypt", ""), http.StatusMethodNotAllowed)
	apiError(t, e.do(t, "POST", "/v1/health", ""), http.StatusMethodNotAllowed)
}

func TestAPI_RequestLog(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64("TOPSECRETPLAINTEXT")+`"}`)
	logs := e.logs.String()
	if !strings.Contains(logs, "route=/v1/keys/:id/encrypt") || !strings.Contains(logs, "status=200") || !strings.Contains(logs, "[DEBUG]") {
		t.Errorf("request not logged at Debug with route and status: %s", logs)
	}
	if strings.Contains(logs, b64("TOPSECRETPLAINTEXT")) || strings.Contains(logs, testToken) {
		t.Errorf("log contains a body or the token: %s", logs)
	}
}

func TestNewRouter_Validate(t *testing.T) {
	good := api.Config{Keys: apitest.NewKeys(), Cluster: apitest.NewCluster(), Tenants: apitest.NewTenants(), OperatorToken: "t"}
	tests := []struct {
		name   string
		mutate func(*api.Config)
		want   string
	}{
		{"no keys", func(c *api.Config) { c.Keys = nil }, "Keys is required"},
		{"no cluster", func(c *api.Config) { c.Cluster = nil }, "Cluster is required"},
		{"no token", func(c *api.Config) { c.OperatorToken = "" }, "OperatorToken is required"},
		{"no tenants", func(c *api.Config) { c.Tenants = nil }, "Tenants is required"},
		{"negative payload", func(c *api.Config) { c.MaxPayload = -1 }, "MaxPayload -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			_, err := api.NewRouter(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err: got %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := api.NewRouter(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
}
