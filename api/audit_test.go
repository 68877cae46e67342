package api_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/fsm"
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

// auditLines writes the records that wait for their batch, and reads
// back all the records in buf.
func (e *testEnv) auditLines(t *testing.T, buf *syncBuffer) []auditLine {
	t.Helper()
	e.flushAudit()
	return parseAuditLines(t, buf.String())
}

// parseAuditLines decodes JSON lines strictly.
func parseAuditLines(t *testing.T, text string) []auditLine {
	t.Helper()
	var out []auditLine
	sc := bufio.NewScanner(strings.NewReader(text))
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
	lines := e.auditLines(t, buf)
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
	e.flushAudit()
	logs := e.logs.String()
	if !strings.Contains(logs, "test.audit: call") || !strings.Contains(logs, "route=/v1/cluster/peers") ||
		!strings.Contains(logs, "operation=list-peers") || !strings.Contains(logs, "role=operator") ||
		!strings.Contains(logs, "request_id="+rec.Header().Get("X-Request-Id")) {
		t.Errorf("audit line missing from the log:\n%s", logs)
	}
	// An organization's call names the organization, token and role.
	id := e.do(t, "GET", "/v1/keys", "").Header().Get("X-Request-Id")
	e.flushAudit()
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

// TestAudit_OneRecordPerRequest: every request to an API route, whatever
// its answer (2xx, 400, 401, 403, 404, 409, 429), leaves exactly one
// record, in order, with the request id the caller got.
func TestAudit_OneRecordPerRequest(t *testing.T) {
	e, buf := newAuditEnv(t)
	e.tenants.AddToken(auditorToken, fsm.DefaultOrganization, fsm.RoleAuditor)
	slow := e.tenants.AddOrganization("slow")
	slow.RateLimit, slow.RateBurst = 0.001, 1
	e.tenants.AddToken("s3cret-slow-token", slow.ID, fsm.RoleOrgAdmin)

	var ids, statuses []string
	send := func(rec *httptest.ResponseRecorder) {
		t.Helper()
		ids = append(ids, rec.Header().Get("X-Request-Id"))
		statuses = append(statuses, strconv.Itoa(rec.Code))
	}
	k := e.createKey(t, "counted")
	ids, statuses = append(ids, "(create)"), append(statuses, "201")
	send(e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`))
	send(e.do(t, "POST", "/v1/keys", `{"name":"counted"}`))                                  // 409
	send(e.do(t, "POST", "/v1/keys", `{"nme":"typo"}`))                                      // 400
	send(e.do(t, "GET", "/v1/keys", "", "Authorization", ""))                                // 401
	send(e.do(t, "GET", "/v1/keys", "", "Authorization", "Bearer wrong"))                    // 401
	send(e.as(t, auditorToken, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`)) // 403
	send(e.asOperator(t, "GET", "/v1/keys/"+k.ID, ""))                                       // 403
	send(e.do(t, "GET", "/v1/keys/00000000-0000-4000-8000-00000000ffff", ""))                // 404
	send(e.do(t, "GET", "/v1/orgs/slow", ""))                                                // 404
	send(e.as(t, "s3cret-slow-token", "GET", "/v1/keys", ""))                                // 200
	send(e.as(t, "s3cret-slow-token", "GET", "/v1/keys", ""))                                // 429
	send(e.asOperator(t, "GET", "/v1/orgs", ""))                                             // 200
	send(e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"nobody"}`))                    // 400
	e.do(t, "GET", "/v1/health", "", "Authorization", "")                                    // not audited

	want := "201 200 409 400 401 401 403 403 404 404 200 429 200 400"
	if got := strings.Join(statuses, " "); got != want {
		t.Fatalf("statuses: got %s, want %s", got, want)
	}
	lines := e.auditLines(t, buf)
	if len(lines) != len(ids) {
		t.Fatalf("got %d audit lines for %d requests:\n%s", len(lines), len(ids), buf)
	}
	for i, l := range lines {
		if i > 0 && l.RequestID != ids[i] {
			t.Errorf("line %d: request id %q, want %q", i, l.RequestID, ids[i])
		}
		if strconv.Itoa(l.Status) != statuses[i] {
			t.Errorf("line %d: status %d, want %s", i, l.Status, statuses[i])
		}
		if l.Operation == "" {
			t.Errorf("line %d: no operation: %+v", i, l)
		}
	}
	if l := lines[11]; l.Organization != slow.ID || l.Role != "org-admin" || l.Code != wire.CodeRateLimited {
		t.Errorf("rate limited call: got %+v", l)
	}
}

// TestAudit_NoSecrets: no record holds a request's plaintext, ciphertext,
// key material or token secret, nor an answer's, in any encoding.
func TestAudit_NoSecrets(t *testing.T) {
	e, buf := newAuditEnv(t)
	plaintext := "TOP-SECRET-PLAINTEXT-0042"
	k := e.createKey(t, "secrets")
	enc := e.encryptAs(t, testToken, k.ID, plaintext)
	e.do(t, "POST", "/v1/decrypt", `{"ciphertext":"`+b64s(enc.Ciphertext)+`"}`)
	e.do(t, "POST", "/v1/keys/"+k.ID+"/re-encrypt", `{"ciphertext":"`+b64s(enc.Ciphertext)+`"}`)
	rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/generate-data-key", `{}`)
	dk := decode[wire.GenerateDataKeyResponse](t, rec)
	material := bytes.Repeat([]byte("KM"), 16)
	e.do(t, "POST", "/v1/keys/"+k.ID+"/import", `{"key_material":"`+b64s(material)+`"}`)
	tok := decode[wire.CreatedToken](t, e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"crypto-user"}`))
	e.as(t, tok.Secret, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64(plaintext)+`"}`)
	e.do(t, "GET", "/v1/keys", "", "Authorization", "Bearer "+tok.Secret+"-wrong")

	secrets := map[string][]byte{
		"plaintext": []byte(plaintext), "ciphertext": enc.Ciphertext, "data key": dk.Plaintext,
		"wrapped data key": dk.Ciphertext, "key material": material, "token secret": []byte(tok.Secret),
		"org-admin token": []byte(testToken), "operator token": []byte(operatorToken),
	}
	e.flushAudit()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 9 {
		t.Fatalf("got %d audit lines, want 9:\n%s", len(lines), buf)
	}
	for _, line := range lines {
		for name, s := range secrets {
			for _, enc := range []string{string(s), b64s(s), base64.RawStdEncoding.EncodeToString(s),
				base64.RawURLEncoding.EncodeToString(s), hex.EncodeToString(s)} {
				if len(enc) >= 8 && strings.Contains(line, enc) {
					t.Errorf("audit line holds the %s: %s", name, line)
				}
			}
		}
	}
}

// failingWriter fails every write while fail is set.
type failingWriter struct {
	mu   sync.Mutex
	fail bool
	buf  bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("no space left on device")
	}
	return w.buf.Write(p)
}

func (w *failingWriter) set(fail bool) {
	w.mu.Lock()
	w.fail = fail
	w.mu.Unlock()
}

func (w *failingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func auditDropped(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "keyzone_audit_dropped_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("keyzone_audit_dropped_total is not registered")
	return 0
}

// TestAudit_FailClosed: once the audit log stops taking records, changes
// are refused with 503 until a record goes through again, while reads and
// crypto go on; every record lost is counted.
func TestAudit_FailClosed(t *testing.T) {
	w := &failingWriter{}
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *api.Config) { c.Audit = audit.NewJSONSink(w); c.Registerer = reg })
	k := e.createKey(t, "fail-closed")
	rotate := func() *httptest.ResponseRecorder { return e.do(t, "POST", "/v1/keys/"+k.ID+"/rotate", "") }
	rotations := func() int {
		n := 0
		for _, c := range e.keys.Calls() {
			if c.Method == "RotateKey" {
				n++
			}
		}
		return n
	}

	w.set(true)
	// The sink learns of the failure with this change's record: the
	// change itself was carried out, and its record is counted as lost.
	if rec := rotate(); rec.Code != http.StatusOK {
		t.Fatalf("first change: got %d %s, want 200", rec.Code, rec.Body)
	}
	if got := auditDropped(t, reg); got != 1 {
		t.Errorf("dropped after the first change: got %v, want 1", got)
	}
	rec := rotate()
	if b := apiError(t, rec, http.StatusServiceUnavailable); b.Code != wire.CodeUnavailable {
		t.Errorf("change while the audit log fails: got %+v, want %s", b, wire.CodeUnavailable)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("refused change: no Retry-After")
	}
	if n := rotations(); n != 1 {
		t.Errorf("the refused change reached the service: %d rotations, want 1", n)
	}
	// Token changes fail closed too; crypto and reads go on.
	if rec := e.do(t, "POST", "/v1/orgs/default/tokens", `{"role":"auditor"}`); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("token creation while the audit log fails: got %d, want 503", rec.Code)
	}
	if rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`); rec.Code != http.StatusOK {
		t.Errorf("encrypt while the audit log fails: got %d %s, want 200", rec.Code, rec.Body)
	}
	if rec := e.do(t, "GET", "/v1/keys/"+k.ID, ""); rec.Code != http.StatusOK {
		t.Errorf("read while the audit log fails: got %d %s, want 200", rec.Code, rec.Body)
	}
	// Their records wait for a batch, which fails too.
	e.flushAudit()
	if got := auditDropped(t, reg); got != 5 {
		t.Errorf("dropped: got %v, want 5 (change, refused change, refused token, encrypt, read)", got)
	}
	if strings.Count(w.String(), "\n") != 1 {
		t.Errorf("records written while failing: %s", w)
	}

	// The writer works again: the next change is still refused (the sink
	// has not written since), and its record goes through, so the one
	// after it is carried out.
	w.set(false)
	rec = rotate()
	if b := apiError(t, rec, http.StatusServiceUnavailable); b.Code != wire.CodeUnavailable {
		t.Errorf("first change after recovery: got %+v, want 503 %s", b, wire.CodeUnavailable)
	}
	if rec := rotate(); rec.Code != http.StatusOK {
		t.Errorf("second change after recovery: got %d %s, want 200", rec.Code, rec.Body)
	}
	if got := auditDropped(t, reg); got != 5 {
		t.Errorf("dropped after recovery: got %v, want still 5", got)
	}
	if n := rotations(); n != 2 {
		t.Errorf("rotations: got %d, want 2", n)
	}
	var got []string
	for _, l := range parseAuditLines(t, w.String()) {
		got = append(got, l.Operation+" "+strconv.Itoa(l.Status))
	}
	if want := []string{"create-key 201", "rotate-key 503", "rotate-key 200"}; !slices.Equal(got, want) {
		t.Errorf("records written: got %q, want %q", got, want)
	}
}

// TestAudit_OperatorCallsNameTheOrganization: an operator's call on an
// organization is recorded under the organization's id, also when the
// path names it by name, so that filtering the log by organization finds
// it; a reference that resolves to nothing is recorded as given.
func TestAudit_OperatorCallsNameTheOrganization(t *testing.T) {
	e, buf := newAuditEnv(t)
	acme := decode[wire.Organization](t, e.asOperator(t, "POST", "/v1/orgs", `{"name":"acme"}`))
	e.asOperator(t, "POST", "/v1/orgs/acme/tokens", `{"role":"auditor"}`)
	e.asOperator(t, "GET", "/v1/orgs/acme", "")
	e.asOperator(t, "GET", "/v1/orgs/nope/tokens", "")
	e.asOperator(t, "GET", "/v1/orgs", "")
	var got []string
	for _, l := range e.auditLines(t, buf) {
		got = append(got, l.Operation+" "+l.Organization+" "+l.Role)
	}
	want := []string{
		"create-organization " + acme.ID + " operator",
		"create-token " + acme.ID + " operator",
		"get-organization " + acme.ID + " operator",
		"list-tokens nope operator",
		"list-organizations  operator",
	}
	if !slices.Equal(got, want) {
		t.Errorf("records: got %q, want %q", got, want)
	}
}

// TestAudit_UnknownRoutesAndRevokedToken: a request for no route is
// recorded too, and a token revocation names the token revoked.
func TestAudit_UnknownRoutesAndRevokedToken(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, func(c *api.Config) { c.Audit = audit.NewJSONSink(&buf) })
	victim := e.tenants.AddToken("victim-secret", fsm.DefaultOrganization, fsm.RoleAuditor)
	if rec := e.do(t, "GET", "/v1/no-such-route", "", "X-Request-Id", "probe-1"); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown route: %d", rec.Code)
	}
	if rec := e.do(t, "PUT", "/v1/keys", "", "X-Request-Id", "probe-2"); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("wrong method: %d", rec.Code)
	}
	if rec := e.do(t, "DELETE", "/v1/orgs/default/tokens/"+victim.ID, "", "X-Request-Id", "revoke-1"); rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 records, got %d:\n%s", len(lines), buf.String())
	}
	want := []struct{ id, op, route, subject string }{
		{"probe-1", "unknown-route", "unmatched", ""},
		{"probe-2", "unknown-route", "unmatched", ""},
		{"revoke-1", "revoke-token", "/v1/orgs/:org/tokens/:token", victim.ID},
	}
	for i, w := range want {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatal(err)
		}
		subject, _ := got["subject_token_id"].(string)
		if got["request_id"] != w.id || got["operation"] != w.op || got["route"] != w.route || subject != w.subject {
			t.Errorf("record %d: got %v, want %+v", i, got, w)
		}
	}
}

// TestAudit_ChangesWaitOthersFollowInABatch: a change's record is in the
// log when the change is answered; a crypto call's record follows within
// milliseconds, written by the queue's timer with no other call.
func TestAudit_ChangesWaitOthersFollowInABatch(t *testing.T) {
	e, buf := newAuditEnv(t)
	k := e.createKey(t, "batched")
	if !strings.Contains(buf.String(), `"operation":"create-key"`) {
		t.Fatalf("key created, its record not written:\n%s", buf)
	}
	id := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`).Header().Get("X-Request-Id")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), `"request_id":"`+id+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the encryption's record was not written within 10 s:\n%s", buf)
		}
		time.Sleep(time.Millisecond)
	}
}
