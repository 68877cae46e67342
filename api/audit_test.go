package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/audit"
)

// auditLine is an audit event as the JSON sink writes it.
type auditLine struct {
	Time         string   `json:"time"`
	RequestID    string   `json:"request_id"`
	Node         string   `json:"node"`
	Zone         string   `json:"zone"`
	Method       string   `json:"method"`
	Organization string   `json:"organization"`
	TokenID      string   `json:"token_id"`
	Role         string   `json:"role"`
	Operation    string   `json:"operation"`
	Route        string   `json:"route"`
	KeyID        string   `json:"key_id"`
	KeyVersion   uint32   `json:"key_version"`
	PeerID       string   `json:"peer_id"`
	TargetZone   string   `json:"target_zone"`
	Status       int      `json:"status"`
	Outcome      string   `json:"outcome"`
	Code         string   `json:"code"`
	Source       string   `json:"source"`
	DurationMS   *float64 `json:"duration_ms"`
}

func auditLines(t *testing.T, buf *syncBuffer) []auditLine {
	t.Helper()
	var out []auditLine
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var l auditLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func newAuditEnv(t *testing.T) (*testEnv, *syncBuffer) {
	buf := &syncBuffer{}
	e := newEnv(t, func(c *api.Config) {
		c.Audit = audit.NewJSONSink(buf)
		c.NodeID, c.Zone = "a1", "zone-a"
	})
	return e, buf
}

func TestAudit_EveryCall(t *testing.T) {
	e, buf := newAuditEnv(t)
	rec := e.do(t, "POST", "/v1/keys", `{"name":"audited","description":"secret-description"}`, "X-Request-Id", "client-req-1")
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("X-Request-Id"); got != "client-req-1" {
		t.Errorf("X-Request-Id: got %q, want the caller's", got)
	}
	k := decode[wire.Key](t, rec)
	e.do(t, "POST", "/v1/keys/"+k.ID+"/disable", "")
	e.do(t, "POST", "/v1/keys/"+k.ID+"/replicas", `{"zone":"zone-b"}`)
	e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/zone-b", "")
	e.asOperator(t, "DELETE", "/v1/cluster/peers/node-2", "")
	e.do(t, "GET", "/v1/zones", "")
	// Refused: no such key, then a wrong token (before authentication, so
	// it is recorded too, with nobody as the caller).
	e.do(t, "POST", "/v1/keys/kz-missing/enable", "")
	wrong := "Bearer not-the-operator-token-0123"
	if rec := e.do(t, "GET", "/v1/cluster/status", "", "Authorization", wrong, "X-Request-Id", "bad id\nwith newline"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: got %d", rec.Code)
	}
	// Reads and crypto are recorded too, crypto with the key version used.
	e.do(t, "GET", "/v1/keys/"+k.ID, "")
	e.do(t, "GET", "/v1/keys", "")
	e.do(t, "POST", "/v1/keys/"+k.ID+"/enable", "")
	if rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`); rec.Code != http.StatusOK {
		t.Fatalf("encrypt: %d %s", rec.Code, rec.Body)
	}
	// The operator may not use keys: refused, and recorded as such.
	e.asOperator(t, "GET", "/v1/keys", "")
	// Health is not audited.
	e.do(t, "GET", "/v1/health", "", "Authorization", "")

	const org, tok, admin, op = "default", "tok001", "org-admin", "operator"
	lines := auditLines(t, buf)
	want := []struct {
		method, route, operation, org, token, role, key string
		version                                         uint32
		peer, zone                                      string
		status                                          int
		outcome, code                                   string
	}{
		{"POST", "/v1/keys", "create-key", org, tok, admin, k.ID, 1, "", "", 201, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/disable", "disable-key", org, tok, admin, k.ID, 1, "", "", 200, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/replicas", "add-replica", org, tok, admin, k.ID, 1, "", "", 200, audit.OutcomeSuccess, ""},
		{"DELETE", "/v1/keys/:id/replicas/:zone", "remove-replica", org, tok, admin, k.ID, 1, "", "zone-b", 200, audit.OutcomeSuccess, ""},
		{"DELETE", "/v1/cluster/peers/:id", "remove-peer", "", "", op, "", 0, "node-2", "", 204, audit.OutcomeSuccess, ""},
		{"GET", "/v1/zones", "list-zones", org, tok, admin, "", 0, "", "", 200, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/enable", "enable-key", org, tok, admin, "kz-missing", 0, "", "", 404, audit.OutcomeRefused, "key_not_found"},
		{"GET", "/v1/cluster/status", "cluster-status", "", "", "", "", 0, "", "", 401, audit.OutcomeDenied, "unauthorized"},
		{"GET", "/v1/keys/:id", "get-key", org, tok, admin, k.ID, 1, "", "", 200, audit.OutcomeSuccess, ""},
		{"GET", "/v1/keys", "list-keys", org, tok, admin, "", 0, "", "", 200, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/enable", "enable-key", org, tok, admin, k.ID, 1, "", "", 200, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/encrypt", "encrypt", org, tok, admin, k.ID, 1, "", "", 200, audit.OutcomeSuccess, ""},
		{"GET", "/v1/keys", "list-keys", "", "", op, "", 0, "", "", 403, audit.OutcomeDenied, "forbidden"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d audit lines, want %d:\n%s", len(lines), len(want), buf)
	}
	for i, w := range want {
		l := lines[i]
		if l.Method != w.method || l.Route != w.route || l.Operation != w.operation ||
			l.Organization != w.org || l.TokenID != w.token || l.Role != w.role ||
			l.KeyID != w.key || l.KeyVersion != w.version || l.PeerID != w.peer || l.TargetZone != w.zone ||
			l.Status != w.status || l.Outcome != w.outcome || l.Code != w.code {
			t.Errorf("line %d: got %+v, want %+v", i, l, w)
		}
		if l.Node != "a1" || l.Zone != "zone-a" || l.Source != "192.0.2.1" || l.Time == "" || l.RequestID == "" ||
			l.DurationMS == nil || *l.DurationMS < 0 {
			t.Errorf("line %d: missing context: %+v", i, l)
		}
	}
	if lines[0].RequestID != "client-req-1" {
		t.Errorf("request id: got %q, want the caller's", lines[0].RequestID)
	}
	if id := lines[7].RequestID; strings.ContainsAny(id, " \n") {
		t.Errorf("an insane incoming request id was kept: %q", id)
	}
	for _, secret := range []string{testToken, operatorToken, "not-the-operator-token", "secret-description", "aGk="} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the audit log holds %q", secret)
		}
	}
}

// Without a sink the events go to the node's log, as logger "audit".
func TestAudit_DefaultsToTheLog(t *testing.T) {
	e := newEnv(t)
	rec := e.asOperator(t, "GET", "/v1/cluster/peers", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("peers: %d", rec.Code)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "test.audit: call") || !strings.Contains(logs, "route=/v1/cluster/peers") ||
		!strings.Contains(logs, "operation=list-peers") || !strings.Contains(logs, "role=operator") ||
		!strings.Contains(logs, "request_id="+rec.Header().Get("X-Request-Id")) {
		t.Errorf("audit line missing from the log:\n%s", logs)
	}
	// An organization's call names the organization, token and role.
	id := e.do(t, "GET", "/v1/keys", "").Header().Get("X-Request-Id")
	logs = e.logs.String()
	if !strings.Contains(logs, "request_id="+id) || !strings.Contains(logs, "organization=default") ||
		!strings.Contains(logs, "token_id=tok001") || !strings.Contains(logs, "role=org-admin") {
		t.Errorf("organization call missing from the log:\n%s", logs)
	}
	if strings.Contains(logs, testToken) || strings.Contains(logs, operatorToken) {
		t.Error("the log holds a token secret")
	}
}

// Every response carries a request id, made here when the caller sent
// none; two calls get two ids.
func TestAudit_RequestIDOnEveryResponse(t *testing.T) {
	e := newEnv(t)
	a := e.do(t, "GET", "/v1/health", "", "Authorization", "").Header().Get("X-Request-Id")
	b := e.do(t, "GET", "/v1/no-such-route", "").Header().Get("X-Request-Id")
	if a == "" || b == "" || a == b {
		t.Errorf("request ids: got %q and %q", a, b)
	}
}
