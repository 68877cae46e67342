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
	Time       string   `json:"time"`
	RequestID  string   `json:"request_id"`
	Node       string   `json:"node"`
	Zone       string   `json:"zone"`
	Method     string   `json:"method"`
	Route      string   `json:"route"`
	KeyID      string   `json:"key_id"`
	PeerID     string   `json:"peer_id"`
	TargetZone string   `json:"target_zone"`
	Status     int      `json:"status"`
	Outcome    string   `json:"outcome"`
	Code       string   `json:"code"`
	Source     string   `json:"source"`
	DurationMS *float64 `json:"duration_ms"`
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

func TestAudit_AdminCalls(t *testing.T) {
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
	e.do(t, "DELETE", "/v1/cluster/peers/node-2", "")
	e.do(t, "GET", "/v1/zones", "")
	// Refused: no such key, then a wrong token (before authentication, so
	// it is recorded too).
	e.do(t, "POST", "/v1/keys/kz-missing/enable", "")
	wrong := "Bearer not-the-root-token-0123"
	if rec := e.do(t, "GET", "/v1/cluster/status", "", "Authorization", wrong, "X-Request-Id", "bad id\nwith newline"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: got %d", rec.Code)
	}
	// Not admin calls: reads and crypto are not audited.
	e.do(t, "GET", "/v1/keys/"+k.ID, "")
	e.do(t, "GET", "/v1/keys", "")
	e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`)
	e.do(t, "GET", "/v1/health", "", "Authorization", "")

	lines := auditLines(t, buf)
	want := []struct {
		method, route, key, peer, zone string
		status                         int
		outcome, code                  string
	}{
		{"POST", "/v1/keys", "", "", "", 201, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/disable", k.ID, "", "", 200, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/replicas", k.ID, "", "", 200, audit.OutcomeSuccess, ""},
		{"DELETE", "/v1/keys/:id/replicas/:zone", k.ID, "", "zone-b", 200, audit.OutcomeSuccess, ""},
		{"DELETE", "/v1/cluster/peers/:id", "", "node-2", "", 204, audit.OutcomeSuccess, ""},
		{"GET", "/v1/zones", "", "", "", 200, audit.OutcomeSuccess, ""},
		{"POST", "/v1/keys/:id/enable", "kz-missing", "", "", 404, audit.OutcomeRefused, "key_not_found"},
		{"GET", "/v1/cluster/status", "", "", "", 401, audit.OutcomeDenied, "unauthorized"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d audit lines, want %d:\n%s", len(lines), len(want), buf)
	}
	for i, w := range want {
		l := lines[i]
		if l.Method != w.method || l.Route != w.route || l.KeyID != w.key || l.PeerID != w.peer || l.TargetZone != w.zone ||
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
	if id := lines[len(lines)-1].RequestID; strings.ContainsAny(id, " \n") {
		t.Errorf("an insane incoming request id was kept: %q", id)
	}
	for _, secret := range []string{testToken, "not-the-root-token", "secret-description", "aGk="} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the audit log holds %q", secret)
		}
	}
}

// Without a sink the events go to the node's log, as logger "audit".
func TestAudit_DefaultsToTheLog(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "GET", "/v1/cluster/peers", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("peers: %d", rec.Code)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "test.audit: admin call") || !strings.Contains(logs, "route=/v1/cluster/peers") ||
		!strings.Contains(logs, "request_id="+rec.Header().Get("X-Request-Id")) {
		t.Errorf("audit line missing from the log:\n%s", logs)
	}
	if strings.Contains(logs, testToken) {
		t.Error("the log holds the root token")
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
