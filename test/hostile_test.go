package test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/test/clustertest"
)

// logCapture is the testing.TB handed to clustertest.New with Verbose on:
// every node's log line arrives through its Log method (clustertest logs
// through t.Log), so a test can inspect the server log without an option
// in clustertest. Lines are kept, not printed: dump shows them on demand.
type logCapture struct {
	*testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) Log(args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(args...))
}

// matching returns the captured lines for which keep is true.
func (l *logCapture) matching(keep func(string) bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func (l *logCapture) all() string {
	return strings.Join(l.matching(func(string) bool { return true }), "\n")
}

// newLoggedZone starts a three-node zone whose log lines (debug level and
// up) are captured.
func newLoggedZone(t *testing.T) (*clustertest.Cluster, *logCapture) {
	t.Helper()
	lc := &logCapture{T: t}
	return clustertest.New(lc, 3, clustertest.Options{Verbose: true}), lc
}

// apiErrorLines returns the Error-level lines logged by the API layer of
// any node ("<node>.api" loggers).
func apiErrorLines(lc *logCapture) []string {
	return lc.matching(func(s string) bool { return strings.Contains(s, "[ERROR]") && strings.Contains(s, ".api:") })
}

// secrets is what must never appear in an answer or a log line:
// plaintexts sent in requests and key material, each in the forms a leak
// would take.
type secrets struct {
	needles map[string]string // needle -> what it is
}

func newSecrets() *secrets { return &secrets{needles: map[string]string{}} }

func (s *secrets) add(what string, b []byte) {
	forms := map[string]string{
		"base64":     base64.StdEncoding.EncodeToString(b),
		"base64 url": base64.RawURLEncoding.EncodeToString(b),
		"hex":        hex.EncodeToString(b),
	}
	if len(b) >= 12 {
		forms["raw"] = string(b)
		// A 16-character run from the middle of the base64 form, so a
		// partial echo is caught too.
		forms["base64 part"] = forms["base64"][4:20]
	}
	for form, n := range forms {
		s.needles[n] = what + " (" + form + ")"
	}
}

// addKeyMaterial adds the wrapped and unwrapped material of every version
// of key id, read from a node's state.
func (s *secrets) addKeyMaterial(t *testing.T, c *clustertest.Cluster, id string) {
	t.Helper()
	k, ok := c.Nodes[0].Server().FSM().Key(id)
	if !ok {
		t.Fatalf("key %s not in the state", id)
	}
	kid, err := kzcrypto.ParseKeyID(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range k.Versions {
		m, err := c.REK.Unwrap(kid, v.Number, v.Wrapped)
		if err != nil {
			t.Fatalf("unwrap %s v%d: %v", id, v.Number, err)
		}
		s.add(fmt.Sprintf("material of %s v%d", id, v.Number), m)
		s.add(fmt.Sprintf("wrapped material of %s v%d", id, v.Number), v.Wrapped)
	}
}

// find returns what the first secret found in text is, or "".
func (s *secrets) find(text string) string {
	for n, what := range s.needles {
		if strings.Contains(text, n) {
			return what
		}
	}
	return ""
}

type hostileCase struct {
	name   string
	method string
	path   string // escaped as sent
	body   string
	header map[string]string
	// auth replaces the Authorization header ("-" sends none).
	auth   string
	status int
	code   string
}

// hostileAnswer is what a node said to one request.
type hostileAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func sendHostile(hc *http.Client, base, token string, tc hostileCase) hostileAnswer {
	req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
	if err != nil {
		return hostileAnswer{err: err}
	}
	if tc.body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	switch tc.auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+token)
	case "-":
	default:
		req.Header.Set("Authorization", tc.auth)
	}
	for k, v := range tc.header {
		req.Header[k] = append(req.Header[k], v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return hostileAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return hostileAnswer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// checkJSONError checks that an answer is the API's JSON error with the
// wanted status and code, and holds no secret.
func checkJSONError(t *testing.T, where string, a hostileAnswer, status int, code string, sec *secrets) {
	t.Helper()
	if a.err != nil {
		t.Errorf("%s: %v", where, a.err)
		return
	}
	if what := sec.find(string(a.body)); what != "" {
		t.Errorf("%s: the answer contains the %s", where, what)
	}
	if a.status >= 500 && a.status != status {
		t.Errorf("%s: got %d %.300s, want %d %s", where, a.status, a.body, status, code)
		return
	}
	var er wire.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&er); err != nil || dec.More() {
		t.Errorf("%s: got %d with a body that is not a JSON error (%v): %.300q", where, a.status, err, a.body)
		return
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error Content-Type %q", where, ct)
	}
	if a.status != status || er.Error.Code != code {
		t.Errorf("%s: got %d %s (%s), want %d %s", where, a.status, er.Error.Code, er.Error.Message, status, code)
	}
	if er.Error.Message == "" {
		t.Errorf("%s: empty error message", where)
	}
}

// TestHostile_EveryRoute sends malformed, mistyped, oversized and
// mismatched requests to every route of every node of a real zone, over
// plain net/http: each answer is the API's JSON error with the expected
// 4xx status and stable code (never a 5xx), no answer carries a request's
// plaintext or key material, and the API logs nothing at Error level.
func TestHostile_EveryRoute(t *testing.T) {
	t.Parallel()
	c, logs := newLoggedZone(t)
	ctx := testCtx(t, 90*time.Second)
	sec := newSecrets()
	secret := make([]byte, 24)
	rand.Read(secret)
	secret = []byte("hostile-" + hex.EncodeToString(secret))
	sec.add("plaintext", secret)

	// Keys to aim at: a (enabled, with a context), b (enabled), r (rotated
	// to version 2), d (disabled).
	sdk, err := client.New(c.Nodes[0].Addr(), c.Token)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string) wire.Key {
		k, err := sdk.CreateKey(ctx, wire.CreateKeyRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	enc := func(id string, ec map[string]string) []byte {
		e, err := sdk.Encrypt(ctx, id, wire.EncryptRequest{Plaintext: secret, EncryptionContext: ec})
		if err != nil {
			t.Fatal(err)
		}
		return e.Ciphertext
	}
	a, b, r, d := mk("a"), mk("b"), mk("r"), mk("d")
	ecA := map[string]string{"tenant": "t1", "purpose": "hostile"}
	ctA, ctB, ctR1, ctD := enc(a.ID, ecA), enc(b.ID, nil), enc(r.ID, nil), enc(d.ID, nil)
	if _, err := sdk.RotateKey(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.DisableKey(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	idx := highestRevision(t, sdk)
	clustertest.WaitFor(t, 10*time.Second, "every node caught up", func() bool {
		for _, n := range c.Nodes {
			if n.Server().FSM().AppliedIndex() < idx {
				return false
			}
		}
		return true
	})
	for _, k := range []wire.Key{a, b, r, d} {
		sec.addKeyMaterial(t, c, k.ID)
	}

	std := base64.StdEncoding.EncodeToString
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	ctJSON := func(ct []byte, extra string) string { return `{"ciphertext":"` + std(ct) + `"` + extra + `}` }
	ecJSON := `,"encryption_context":{"tenant":"t1","purpose":"hostile"}`
	flip := func(ct []byte, i int) []byte { o := bytes.Clone(ct); o[i] ^= 0x04; return o }
	swapped := bytes.Clone(ctR1)
	swapped[1+kzcrypto.KeyIDSize+3] = 2
	oversized := make([]byte, kzcrypto.HeaderSize+kzcrypto.DefaultMaxPayload+17)
	copy(oversized, ctA)
	pt := `"plaintext":"` + std(secret) + `"`
	big := strings.Repeat("x", 1<<20)
	missing := "00000000-0000-4000-8000-000000000000"
	manyEntries := make(map[string]string, 4000)
	for i := range 4000 {
		manyEntries[fmt.Sprintf("k%04d", i)] = "v"
	}
	manyJSON, _ := json.Marshal(manyEntries)
	tooMany := make([]string, 51)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("t%d", i)
	}
	tooManyJSON, _ := json.Marshal(tooMany)

	const (
		s400, s401, s404, s405, s409, s412, s413, s422 = 400, 401, 404, 405, 409, 412, 413, 422
		inv, unauth, nf, knf, mna, disabled, state     = "invalid_argument", "unauthorized", "not_found", "key_not_found", "method_not_allowed", "key_disabled", "invalid_state"
		revision, tooLarge, decrypt                    = "revision_mismatch", "payload_too_large", "decrypt_failed"
	)
	ka := "/v1/keys/" + a.ID
	kd := "/v1/keys/" + d.ID
	cases := []hostileCase{
		// Authentication comes before anything else.
		{name: "no token", method: "GET", path: "/v1/keys", auth: "-", status: s401, code: unauth},
		{name: "wrong token", method: "GET", path: "/v1/keys", auth: "Bearer kz_wrong", status: s401, code: unauth},
		{name: "empty bearer", method: "GET", path: "/v1/keys", auth: "Bearer ", status: s401, code: unauth},
		{name: "basic scheme", method: "GET", path: "/v1/keys", auth: "Basic " + std([]byte("root:root")), status: s401, code: unauth},
		{name: "token prefix", method: "POST", path: ka + "/encrypt", body: `{` + pt + `}`, auth: "Bearer kz_test_", status: s401, code: unauth},
		{name: "no token, decrypt", method: "POST", path: "/v1/decrypt", body: ctJSON(ctA, ecJSON), auth: "-", status: s401, code: unauth},

		// Routes and methods.
		{name: "unknown route", method: "GET", path: "/v1/nope", status: s404, code: nf},
		{name: "unknown version", method: "GET", path: "/v2/keys", status: s404, code: nf},
		{name: "unknown key action", method: "POST", path: ka + "/explode", body: `{}`, status: s404, code: nf},
		{name: "PUT keys", method: "PUT", path: "/v1/keys", body: `{"name":"x"}`, status: s405, code: mna},
		{name: "DELETE key", method: "DELETE", path: ka, status: s405, code: mna},
		{name: "POST key", method: "POST", path: ka, body: `{}`, status: s405, code: mna},
		{name: "GET encrypt", method: "GET", path: ka + "/encrypt", status: s405, code: mna},
		{name: "GET decrypt", method: "GET", path: "/v1/decrypt", status: s405, code: mna},
		{name: "PATCH decrypt", method: "PATCH", path: "/v1/decrypt", body: `{}`, status: s405, code: mna},
		{name: "DELETE rotate", method: "DELETE", path: ka + "/rotate", status: s405, code: mna},
		{name: "POST cluster status", method: "POST", path: "/v1/cluster/status", body: `{}`, status: s405, code: mna},

		// Key ids with path tricks, other spellings, unicode, huge.
		{name: "id ..%2F", method: "GET", path: "/v1/keys/..%2F" + a.ID, status: s404, code: nf},
		{name: "id ..%2F..%2Fcluster%2Fstatus", method: "GET", path: "/v1/keys/..%2F..%2Fcluster%2Fstatus", status: s404, code: nf},
		{name: "id %2e%2e", method: "GET", path: "/v1/keys/%2e%2e", status: s404, code: knf},
		{name: "id %2e%2e encrypt", method: "POST", path: "/v1/keys/%2e%2e/encrypt", body: `{` + pt + `}`, status: s404, code: knf},
		{name: "id %252F", method: "GET", path: "/v1/keys/%252F" + a.ID, status: s404, code: knf},
		{name: "id upper case", method: "GET", path: "/v1/keys/" + strings.ToUpper(a.ID), status: s404, code: knf},
		{name: "id trailing space", method: "POST", path: ka + "%20/encrypt", body: `{` + pt + `}`, status: s404, code: knf},
		{name: "id NUL", method: "GET", path: "/v1/keys/" + a.ID + "%00", status: s404, code: knf},
		{name: "id unicode", method: "GET", path: "/v1/keys/" + url.PathEscape("ключ-🔑-"+a.ID[:20]), status: s404, code: knf},
		{name: "id unicode decrypt", method: "POST", path: "/v1/keys/" + url.PathEscape("ключ") + "/decrypt", body: ctJSON(ctA, ecJSON), status: s404, code: knf},
		{name: "id 10 KB", method: "GET", path: "/v1/keys/" + strings.Repeat("a", 10<<10), status: s404, code: knf},
		{name: "id 10 KB rotate", method: "POST", path: "/v1/keys/" + strings.Repeat("a", 10<<10) + "/rotate", status: s404, code: knf},
		{name: "id missing", method: "GET", path: "/v1/keys/" + missing, status: s404, code: knf},
		{name: "id missing versions", method: "GET", path: "/v1/keys/" + missing + "/versions", status: s404, code: knf},

		// Create: malformed JSON, wrong types, unknown fields, sizes, rules.
		{name: "create empty body", method: "POST", path: "/v1/keys", status: s400, code: inv},
		{name: "create {", method: "POST", path: "/v1/keys", body: `{`, status: s400, code: inv},
		{name: "create bad token", method: "POST", path: "/v1/keys", body: `{"name":}`, status: s400, code: inv},
		{name: "create array", method: "POST", path: "/v1/keys", body: `[]`, status: s400, code: inv},
		{name: "create string", method: "POST", path: "/v1/keys", body: `"x"`, status: s400, code: inv},
		{name: "create null", method: "POST", path: "/v1/keys", body: `null`, status: s400, code: inv},
		{name: "create trailing data", method: "POST", path: "/v1/keys", body: `{"name":"x"}{}`, status: s400, code: inv},
		{name: "create deep nesting", method: "POST", path: "/v1/keys", body: strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000), status: s400, code: inv},
		{name: "create name number", method: "POST", path: "/v1/keys", body: `{"name":1}`, status: s400, code: inv},
		{name: "create tags string", method: "POST", path: "/v1/keys", body: `{"name":"x","tags":"a"}`, status: s400, code: inv},
		{name: "create protected string", method: "POST", path: "/v1/keys", body: `{"name":"x","protected":"yes"}`, status: s400, code: inv},
		{name: "create policy string", method: "POST", path: "/v1/keys", body: `{"name":"x","rotation_policy":"1h"}`, status: s400, code: inv},
		{name: "create period number", method: "POST", path: "/v1/keys", body: `{"name":"x","rotation_policy":{"rotation_period":3600}}`, status: s400, code: inv},
		{name: "create unknown field", method: "POST", path: "/v1/keys", body: `{"name":"x","nme":"y"}`, status: s400, code: inv},
		{name: "create sets organization", method: "POST", path: "/v1/keys", body: `{"name":"x","organization":"other"}`, status: s400, code: inv},
		{name: "create sets id", method: "POST", path: "/v1/keys", body: `{"name":"x","id":"` + missing + `"}`, status: s400, code: inv},
		{name: "create huge body", method: "POST", path: "/v1/keys", body: `{"name":"x","description":"` + big + `"}`, status: s413, code: tooLarge},
		{name: "create duplicate name field", method: "POST", path: "/v1/keys", body: `{"name":"x","name":""}`, status: s400, code: inv},
		{name: "create name too long", method: "POST", path: "/v1/keys", body: `{"name":"` + strings.Repeat("n", 257) + `"}`, status: s400, code: inv},
		{name: "create name control", method: "POST", path: "/v1/keys", body: `{"name":"a\u0000b"}`, status: s400, code: inv},
		{name: "create 51 tags", method: "POST", path: "/v1/keys", body: `{"name":"x","tags":` + string(tooManyJSON) + `}`, status: s400, code: inv},
		{name: "create empty tag", method: "POST", path: "/v1/keys", body: `{"name":"x","tags":[""]}`, status: s400, code: inv},
		{name: "create usage", method: "POST", path: "/v1/keys", body: `{"name":"x","usage":"sign_verify"}`, status: s400, code: inv},
		{name: "create algorithm", method: "POST", path: "/v1/keys", body: `{"name":"x","algorithm":"rsa_4096"}`, status: s400, code: inv},
		{name: "create replica zones", method: "POST", path: "/v1/keys", body: `{"name":"x","replica_zones":["zone-b"]}`, status: s400, code: inv},
		{name: "create period 1ns", method: "POST", path: "/v1/keys", body: `{"name":"x","rotation_policy":{"rotation_period":"1ns"}}`, status: s400, code: inv},
		{name: "create period negative", method: "POST", path: "/v1/keys", body: `{"name":"x","rotation_policy":{"rotation_period":"-1h"}}`, status: s400, code: inv},
		{name: "create period garbage", method: "POST", path: "/v1/keys", body: `{"name":"x","rotation_policy":{"rotation_period":"soon"}}`, status: s400, code: inv},
		{name: "create period overflow", method: "POST", path: "/v1/keys", body: `{"name":"x","rotation_policy":{"rotation_period":"9999999999h"}}`, status: s400, code: inv},
		{name: "create idempotency key spaces", method: "POST", path: "/v1/keys", body: `{"name":"x"}`, header: map[string]string{"Idempotency-Key": "has some spaces"}, status: s400, code: inv},
		{name: "create idempotency key empty", method: "POST", path: "/v1/keys", body: `{"name":"x"}`, header: map[string]string{"Idempotency-Key": ""}, status: s400, code: inv},
		{name: "create idempotency key 129", method: "POST", path: "/v1/keys", body: `{"name":"x"}`, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, status: s400, code: inv},
		{name: "create idempotency key 16 KB", method: "POST", path: "/v1/keys", body: `{"name":"x"}`, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 16<<10)}, status: s400, code: inv},
		{name: "create idempotency key non-ASCII", method: "POST", path: "/v1/keys", body: `{"name":"x"}`, header: map[string]string{"Idempotency-Key": "clé\xff"}, status: s400, code: inv},

		// List and reads.
		{name: "list page_size=-1", method: "GET", path: "/v1/keys?page_size=-1", status: s400, code: inv},
		{name: "list page_size=abc", method: "GET", path: "/v1/keys?page_size=abc", status: s400, code: inv},
		{name: "list page_size=1001", method: "GET", path: "/v1/keys?page_size=1001", status: s400, code: inv},
		{name: "list page_size=1e3", method: "GET", path: "/v1/keys?page_size=1e3", status: s400, code: inv},
		{name: "list page_size huge", method: "GET", path: "/v1/keys?page_size=99999999999999999999", status: s400, code: inv},
		{name: "list state=bogus", method: "GET", path: "/v1/keys?state=bogus", status: s400, code: inv},
		{name: "list state=ENABLED", method: "GET", path: "/v1/keys?state=ENABLED", status: s400, code: inv},
		{name: "list page_token garbage", method: "GET", path: "/v1/keys?page_token=%21%21%21", status: s400, code: inv},
		{name: "list page_token forged", method: "GET", path: "/v1/keys?page_token=" + base64.RawURLEncoding.EncodeToString([]byte("after:../../etc")), status: s400, code: inv},
		{name: "list stale=maybe", method: "GET", path: "/v1/keys?stale=maybe", status: s400, code: inv},
		{name: "get stale=2", method: "GET", path: ka + "?stale=2", status: s400, code: inv},
		{name: "min index abc", method: "GET", path: "/v1/keys", header: map[string]string{"X-Keyzone-Min-Index": "abc"}, status: s400, code: inv},
		{name: "min index -1", method: "GET", path: "/v1/keys", header: map[string]string{"X-Keyzone-Min-Index": "-1"}, status: s400, code: inv},
		{name: "min index 2^64", method: "GET", path: "/v1/keys", header: map[string]string{"X-Keyzone-Min-Index": "18446744073709551616"}, status: s400, code: inv},
		{name: "min index 1e3", method: "POST", path: ka + "/encrypt", body: `{` + pt + `}`, header: map[string]string{"X-Keyzone-Min-Index": "1e3"}, status: s400, code: inv},

		// Update.
		{name: "update {}", method: "PATCH", path: ka, body: `{}`, status: s400, code: inv},
		{name: "update empty body", method: "PATCH", path: ka, status: s400, code: inv},
		{name: "update name null", method: "PATCH", path: ka, body: `{"name":null}`, status: s400, code: inv},
		{name: "update name empty", method: "PATCH", path: ka, body: `{"name":""}`, status: s400, code: inv},
		{name: "update tags [\"\"]", method: "PATCH", path: ka, body: `{"tags":[""]}`, status: s400, code: inv},
		{name: "update period garbage", method: "PATCH", path: ka, body: `{"rotation_policy":{"rotation_period":"x"}}`, status: s400, code: inv},
		{name: "update period 1ns", method: "PATCH", path: ka, body: `{"rotation_policy":{"rotation_period":"1ns"}}`, status: s400, code: inv},
		{name: "update unknown field", method: "PATCH", path: ka, body: `{"state":"disabled"}`, status: s400, code: inv},
		{name: "update If-Match abc", method: "PATCH", path: ka, body: `{"description":"x"}`, header: map[string]string{"If-Match": "abc"}, status: s400, code: inv},
		{name: "update If-Match 0", method: "PATCH", path: ka, body: `{"description":"x"}`, header: map[string]string{"If-Match": "0"}, status: s400, code: inv},
		{name: "update If-Match weak", method: "PATCH", path: ka, body: `{"description":"x"}`, header: map[string]string{"If-Match": `W/"1"`}, status: s400, code: inv},
		{name: "update If-Match stale", method: "PATCH", path: ka, body: `{"description":"x"}`, header: map[string]string{"If-Match": "1"}, status: s412, code: revision},
		{name: "update If-Match max", method: "PATCH", path: ka, body: `{"description":"x"}`, header: map[string]string{"If-Match": `"18446744073709551615"`}, status: s412, code: revision},
		{name: "update missing key", method: "PATCH", path: "/v1/keys/" + missing, body: `{"description":"x"}`, status: s404, code: knf},

		// Lifecycle.
		{name: "enable unknown field", method: "POST", path: ka + "/enable", body: `{"force":true}`, status: s400, code: inv},
		{name: "enable array", method: "POST", path: ka + "/enable", body: `[]`, status: s400, code: inv},
		{name: "disable {", method: "POST", path: ka + "/disable", body: `{`, status: s400, code: inv},
		{name: "disable If-Match abc", method: "POST", path: ka + "/disable", header: map[string]string{"If-Match": "abc"}, status: s400, code: inv},
		{name: "disable If-Match stale", method: "POST", path: ka + "/disable", header: map[string]string{"If-Match": "1"}, status: s412, code: revision},
		{name: "protect If-Match stale", method: "POST", path: ka + "/protect", header: map[string]string{"If-Match": "1"}, status: s412, code: revision},
		{name: "protect two If-Match", method: "POST", path: ka + "/protect", header: map[string]string{"If-Match": "1", "if-match": "2"}, status: s400, code: inv},
		{name: "unprotect body string", method: "POST", path: ka + "/unprotect", body: `"x"`, status: s400, code: inv},
		{name: "unprotect If-Match negative", method: "POST", path: ka + "/unprotect", header: map[string]string{"If-Match": "-5"}, status: s400, code: inv},
		{name: "unprotect missing", method: "POST", path: "/v1/keys/" + missing + "/unprotect", status: s404, code: knf},
		{name: "versions stale=yes", method: "GET", path: ka + "/versions?stale=yes", status: s400, code: inv},
		{name: "versions POST", method: "POST", path: ka + "/versions", body: `{}`, status: s405, code: mna},
		{name: "health POST", method: "POST", path: "/v1/health", body: `{}`, status: s405, code: mna},
		{name: "rotate disabled", method: "POST", path: kd + "/rotate", status: s409, code: state},
		{name: "rotate idempotency key spaces", method: "POST", path: ka + "/rotate", header: map[string]string{"Idempotency-Key": "a b"}, status: s400, code: inv},
		{name: "rotate If-Match stale", method: "POST", path: ka + "/rotate", header: map[string]string{"If-Match": "1"}, status: s412, code: revision},
		{name: "cancel deletion of enabled", method: "POST", path: ka + "/cancel-deletion", status: s409, code: state},
		{name: "enable missing", method: "POST", path: "/v1/keys/" + missing + "/enable", status: s404, code: knf},
		{name: "schedule deletion 1ns", method: "POST", path: ka + "/schedule-deletion", body: `{"pending_window":"1ns"}`, status: s400, code: inv},
		{name: "schedule deletion negative", method: "POST", path: ka + "/schedule-deletion", body: `{"pending_window":"-168h"}`, status: s400, code: inv},
		{name: "schedule deletion too long", method: "POST", path: ka + "/schedule-deletion", body: `{"pending_window":"1000000h"}`, status: s400, code: inv},
		{name: "schedule deletion garbage", method: "POST", path: ka + "/schedule-deletion", body: `{"pending_window":"tomorrow"}`, status: s400, code: inv},
		{name: "schedule deletion number", method: "POST", path: ka + "/schedule-deletion", body: `{"pending_window":5}`, status: s400, code: inv},
		{name: "schedule deletion If-Match stale", method: "POST", path: ka + "/schedule-deletion", header: map[string]string{"If-Match": "1"}, status: s412, code: revision},

		// Encrypt.
		{name: "encrypt empty body", method: "POST", path: ka + "/encrypt", status: s400, code: inv},
		{name: "encrypt bad base64", method: "POST", path: ka + "/encrypt", body: `{"plaintext":` + q(string(secret)+"!") + `}`, status: s400, code: inv},
		{name: "encrypt url base64", method: "POST", path: ka + "/encrypt", body: `{"plaintext":"` + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff}) + `"}`, status: s400, code: inv},
		{name: "encrypt plaintext number", method: "POST", path: ka + "/encrypt", body: `{"plaintext":123}`, status: s400, code: inv},
		{name: "encrypt plaintext object", method: "POST", path: ka + "/encrypt", body: `{"plaintext":{"a":1}}`, status: s400, code: inv},
		{name: "encrypt plaintext array of strings", method: "POST", path: ka + "/encrypt", body: `{"plaintext":["a"]}`, status: s400, code: inv},
		{name: "encrypt context string", method: "POST", path: ka + "/encrypt", body: `{` + pt + `,"encryption_context":"x"}`, status: s400, code: inv},
		{name: "encrypt context number value", method: "POST", path: ka + "/encrypt", body: `{` + pt + `,"encryption_context":{"a":1}}`, status: s400, code: inv},
		{name: "encrypt context and ad", method: "POST", path: ka + "/encrypt", body: `{` + pt + `,"encryption_context":{"a":"b"},"associated_data":"eA=="}`, status: s400, code: inv},
		{name: "encrypt bad ad base64", method: "POST", path: ka + "/encrypt", body: `{` + pt + `,"associated_data":"%%%"}`, status: s400, code: inv},
		{name: "encrypt unknown field", method: "POST", path: ka + "/encrypt", body: `{` + pt + `,"key_version":1}`, status: s400, code: inv},
		{name: "encrypt limit+1", method: "POST", path: ka + "/encrypt", body: `{"plaintext":"` + std(make([]byte, kzcrypto.DefaultMaxPayload+1)) + `"}`, status: s413, code: tooLarge},
		{name: "encrypt huge body", method: "POST", path: ka + "/encrypt", body: `{` + pt + `,"encryption_context":{"a":"` + big + `"}}`, status: s413, code: tooLarge},
		{name: "encrypt disabled", method: "POST", path: kd + "/encrypt", body: `{` + pt + `}`, status: s409, code: disabled},
		{name: "encrypt missing", method: "POST", path: "/v1/keys/" + missing + "/encrypt", body: `{` + pt + `}`, status: s404, code: knf},

		// Data keys.
		{name: "data key 512", method: "POST", path: ka + "/generate-data-key", body: `{"key_size":512}`, status: s400, code: inv},
		{name: "data key -1", method: "POST", path: ka + "/generate-data-key", body: `{"key_size":-1}`, status: s400, code: inv},
		{name: "data key string", method: "POST", path: ka + "/generate-data-key", body: `{"key_size":"256"}`, status: s400, code: inv},
		{name: "data key 1e100", method: "POST", path: ka + "/generate-data-key", body: `{"key_size":1e100}`, status: s400, code: inv},
		{name: "data key 256.5", method: "POST", path: ka + "/generate-data-key", body: `{"key_size":256.5}`, status: s400, code: inv},
		{name: "data key without_plaintext string", method: "POST", path: ka + "/generate-data-key", body: `{"without_plaintext":"yes"}`, status: s400, code: inv},
		{name: "data key disabled", method: "POST", path: kd + "/generate-data-key", body: `{}`, status: s409, code: disabled},
		{name: "data key missing", method: "POST", path: "/v1/keys/" + missing + "/generate-data-key", body: `{}`, status: s404, code: knf},
		{name: "data key id traversal", method: "POST", path: "/v1/keys/..%2F..%2Fkeys/generate-data-key", body: `{}`, status: s404, code: nf},
	}

	// Decrypt and re-encrypt: every ciphertext problem is the one 422,
	// on both routes, named or not.
	badCiphertexts := map[string]string{
		"empty":              ctJSON(nil, ecJSON),
		"null":               `{"ciphertext":null` + ecJSON + `}`,
		"missing":            `{` + ecJSON[1:] + `}`,
		"one byte":           ctJSON([]byte{1}, ecJSON),
		"short":              ctJSON(ctA[:kzcrypto.HeaderSize], ecJSON),
		"truncated":          ctJSON(ctA[:len(ctA)-1], ecJSON),
		"trailing byte":      ctJSON(append(bytes.Clone(ctA), 0), ecJSON),
		"flipped format":     ctJSON(flip(ctA, 0), ecJSON),
		"flipped key id":     ctJSON(flip(ctA, 3), ecJSON),
		"flipped version":    ctJSON(flip(ctA, 20), ecJSON),
		"flipped salt":       ctJSON(flip(ctA, 25), ecJSON),
		"flipped nonce":      ctJSON(flip(ctA, 40), ecJSON),
		"flipped body":       ctJSON(flip(ctA, kzcrypto.HeaderSize+1), ecJSON),
		"flipped tag":        ctJSON(flip(ctA, len(ctA)-1), ecJSON),
		"zeros":              ctJSON(make([]byte, len(ctA)), ecJSON),
		"another key's":      ctJSON(ctB, ecJSON),
		"swapped version":    ctJSON(swapped, ""),
		"no context":         ctJSON(ctA, ""),
		"wrong context":      ctJSON(ctA, `,"encryption_context":{"tenant":"t2","purpose":"hostile"}`),
		"extra context":      ctJSON(ctA, `,"encryption_context":{"tenant":"t1","purpose":"hostile","x":""}`),
		"context as ad":      ctJSON(ctA, `,"associated_data":"`+std([]byte("tenant=t1,purpose=hostile"))+`"`),
		"4000-entry context": ctJSON(ctA, `,"encryption_context":`+string(manyJSON)),
	}
	for name, body := range badCiphertexts {
		for _, p := range []string{"/v1/decrypt", ka + "/decrypt", "/v1/re-encrypt", ka + "/re-encrypt"} {
			cases = append(cases, hostileCase{name: "ciphertext " + name, method: "POST", path: p, body: body, status: s422, code: decrypt})
		}
	}
	for _, p := range []string{"/v1/decrypt", ka + "/decrypt", "/v1/re-encrypt", ka + "/re-encrypt"} {
		cases = append(cases,
			hostileCase{name: "ciphertext bad base64", method: "POST", path: p, body: `{"ciphertext":"****"}`, status: s400, code: inv},
			hostileCase{name: "ciphertext number", method: "POST", path: p, body: `{"ciphertext":5}`, status: s400, code: inv},
			hostileCase{name: "ciphertext with plaintext field", method: "POST", path: p, body: `{"ciphertext":"` + std(ctA) + `",` + pt + `}`, status: s400, code: inv},
			hostileCase{name: "ciphertext context and ad", method: "POST", path: p, body: ctJSON(ctA, ecJSON+`,"associated_data":"eA=="`), status: s400, code: inv},
			hostileCase{name: "ciphertext oversized", method: "POST", path: p, body: ctJSON(oversized, ""), status: s413, code: tooLarge},
			hostileCase{name: "ciphertext giant context", method: "POST", path: p, body: ctJSON(ctA, `,"encryption_context":{"k":"`+big+`"}`), status: s413, code: tooLarge},
		)
	}
	// A disabled key's ciphertext: refused as such when the key comes from
	// the ciphertext; under another (enabled) key named in the URL it is
	// just a ciphertext that is not that key's.
	for _, p := range []string{"/v1/decrypt", "/v1/re-encrypt"} {
		cases = append(cases, hostileCase{name: "ciphertext of a disabled key", method: "POST", path: p, body: ctJSON(ctD, ""), status: s409, code: disabled})
	}
	for _, p := range []string{ka + "/decrypt", ka + "/re-encrypt"} {
		cases = append(cases, hostileCase{name: "ciphertext of a disabled key", method: "POST", path: p, body: ctJSON(ctD, ""), status: s422, code: decrypt})
	}
	for _, op := range []string{"/decrypt", "/re-encrypt"} {
		cases = append(cases,
			hostileCase{name: "named other key", method: "POST", path: "/v1/keys/" + b.ID + op, body: ctJSON(ctA, ecJSON), status: s422, code: decrypt},
			hostileCase{name: "named missing key", method: "POST", path: "/v1/keys/" + missing + op, body: ctJSON(ctA, ecJSON), status: s404, code: knf},
			hostileCase{name: "named missing key, garbage", method: "POST", path: "/v1/keys/" + missing + op, body: ctJSON([]byte{1, 2, 3}, ""), status: s404, code: knf},
			hostileCase{name: "named malformed key", method: "POST", path: "/v1/keys/nope" + op, body: ctJSON(ctA, ecJSON), status: s404, code: knf},
			hostileCase{name: "named disabled key, its ciphertext", method: "POST", path: kd + op, body: ctJSON(ctD, ""), status: s409, code: disabled},
			hostileCase{name: "named disabled key, garbage", method: "POST", path: kd + op, body: ctJSON([]byte{1, 2, 3}, ""), status: s409, code: disabled},
			hostileCase{name: "named disabled key, tampered", method: "POST", path: kd + op, body: ctJSON(flip(ctD, 20), ""), status: s409, code: disabled},
		)
	}
	for _, p := range []string{"/v1/re-encrypt", ka + "/re-encrypt"} {
		cases = append(cases,
			hostileCase{name: "re-encrypt destination traversal", method: "POST", path: p, body: ctJSON(ctA, ecJSON+`,"destination_key_id":"../../v1/cluster/status"`), status: s404, code: knf},
			hostileCase{name: "re-encrypt destination missing", method: "POST", path: p, body: ctJSON(ctA, ecJSON+`,"destination_key_id":"`+missing+`"`), status: s404, code: knf},
			hostileCase{name: "re-encrypt destination disabled", method: "POST", path: p, body: ctJSON(ctA, ecJSON+`,"destination_key_id":"`+d.ID+`"`), status: s409, code: disabled},
			hostileCase{name: "re-encrypt garbage to missing destination", method: "POST", path: p, body: ctJSON([]byte{1, 2, 3}, `,"destination_key_id":"`+missing+`"`), status: s404, code: knf},
			hostileCase{name: "re-encrypt tampered to disabled destination", method: "POST", path: p, body: ctJSON(flip(ctA, len(ctA)-1), ecJSON+`,"destination_key_id":"`+d.ID+`"`), status: s409, code: disabled},
			hostileCase{name: "re-encrypt destination number", method: "POST", path: p, body: ctJSON(ctA, ecJSON+`,"destination_key_id":5`), status: s400, code: inv},
			hostileCase{name: "re-encrypt destination context and ad", method: "POST", path: p, body: ctJSON(ctA, ecJSON+`,"destination_encryption_context":{"a":"b"},"destination_associated_data":"eA=="`), status: s400, code: inv},
		)
	}

	// A session index no node will reach: the request waits its bounded
	// time, then is told to retry (503 with Retry-After), never a 500.
	farFuture := hostileCase{name: "min index 2^64-1", method: "POST", path: ka + "/encrypt", body: `{` + pt + `}`,
		header: map[string]string{"X-Keyzone-Min-Index": "18446744073709551615"}, status: 503, code: "unavailable"}
	farAnswers := make([]hostileAnswer, len(c.Nodes))
	var farWG sync.WaitGroup
	for i, n := range c.Nodes {
		farWG.Add(1)
		go func() {
			defer farWG.Done()
			farAnswers[i] = sendHostile(&http.Client{Timeout: 30 * time.Second}, n.Addr(), c.Token, farFuture)
		}()
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tc := range cases {
				a := sendHostile(hc, n.Addr(), c.Token, tc)
				checkJSONError(t, fmt.Sprintf("%s: %s %.60s (%s)", n.ID, tc.method, tc.path, tc.name), a, tc.status, tc.code, sec)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d hostile requests on each of %d nodes in %s", len(cases), len(c.Nodes), time.Since(start).Round(time.Millisecond))

	farWG.Wait()
	for i, a := range farAnswers {
		where := fmt.Sprintf("%s: %s", c.Nodes[i].ID, farFuture.name)
		checkJSONError(t, where, a, farFuture.status, farFuture.code, sec)
		if a.err == nil && a.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", where)
		}
	}

	// A 1 MB header is refused by net/http itself, before the API: 431,
	// and the node keeps serving.
	for _, n := range c.Nodes {
		a := sendHostile(hc, n.Addr(), c.Token, hostileCase{method: "POST", path: "/v1/keys", body: `{"name":"x"}`,
			header: map[string]string{"Idempotency-Key": strings.Repeat("k", 1<<20)}})
		if a.err == nil && a.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: 1 MB Idempotency-Key: got %d %.200s, want 431", n.ID, a.status, a.body)
		}
	}

	// The internal routes take the nodes' peer token, derived from the
	// root key: neither the operator's token nor an organization's opens
	// them. Hostile input there is still a 4xx.
	peer := c.REK.PeerToken()
	for _, tc := range []struct {
		hostileCase
		token string
	}{
		{hostileCase{name: "internal, no token", method: "POST", path: "/v1/internal/propose", body: `{}`, auth: "-", status: s401}, peer},
		{hostileCase{name: "internal, operator token", method: "POST", path: "/v1/internal/propose", body: `{}`, status: s401}, c.OperatorToken},
		{hostileCase{name: "internal, org-admin token", method: "POST", path: "/v1/internal/propose", body: `{}`, status: s401}, c.Token},
		{hostileCase{name: "internal changes, operator token", method: "GET", path: "/v1/internal/changes?after=0&zone=zone-b&wait=0s", status: s401}, c.OperatorToken},
		{hostileCase{name: "internal changes, org-admin token", method: "GET", path: "/v1/internal/changes?after=0&zone=zone-b&wait=0s", status: s401}, c.Token},
		{hostileCase{name: "internal propose {", method: "POST", path: "/v1/internal/propose", body: `{`, status: s400}, peer},
		{hostileCase{name: "internal changes, bad after", method: "GET", path: "/v1/internal/changes?after=x&zone=zone-b&wait=0s", status: s400}, peer},
		{hostileCase{name: "internal unknown", method: "GET", path: "/v1/internal/nope", status: s404}, peer},
	} {
		for _, n := range c.Nodes {
			if a := sendHostile(hc, n.Addr(), tc.token, tc.hostileCase); a.err != nil || a.status != tc.status {
				t.Errorf("%s: %s: got %d %v, want %d", n.ID, tc.name, a.status, a.err, tc.status)
			}
		}
	}

	// Nothing hostile changed a key, and the zone still works.
	for _, k := range []wire.Key{a, b, r, d} {
		got, err := sdk.GetKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != map[bool]string{true: "disabled", false: "enabled"}[k.ID == d.ID] || got.Description != "" ||
			got.CurrentVersion != map[bool]uint32{true: 2, false: 1}[k.ID == r.ID] {
			t.Errorf("key %s changed: %+v", k.Name, got)
		}
	}
	list, err := sdk.ListKeys(ctx, client.ListKeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Keys) != 5 {
		t.Errorf("got %d keys after the hostile requests, want the 4 of the test and the default key", len(list.Keys))
	}
	dec, err := sdk.Decrypt(ctx, wire.DecryptRequest{Ciphertext: ctA, EncryptionContext: ecA})
	if err != nil || !bytes.Equal(dec.Plaintext, secret) {
		t.Fatalf("decrypt after the hostile requests: %v", err)
	}

	if lines := apiErrorLines(logs); len(lines) > 0 {
		t.Errorf("the API logged %d lines at Error level:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if line := firstSecretLine(logs, sec); line != "" {
		t.Errorf("the server log holds a secret: %s", line)
	}
	if len(logs.matching(func(s string) bool { return strings.Contains(s, ".api:") })) == 0 {
		t.Error("no API log line was captured: the log check sees nothing")
	}
}

// firstSecretLine returns the first captured log line holding a secret.
func firstSecretLine(lc *logCapture, sec *secrets) string {
	for _, l := range lc.matching(func(string) bool { return true }) {
		if what := sec.find(l); what != "" {
			return what + ": " + l
		}
	}
	return ""
}

// highestRevision returns the highest revision among the keys: a Raft
// index every node must reach before a test relies on local state.
func highestRevision(t *testing.T, sdk *client.Client) uint64 {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	l, err := sdk.ListKeys(ctx, client.ListKeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var idx uint64
	for _, k := range l.Keys {
		idx = max(idx, k.Revision)
	}
	return idx
}
