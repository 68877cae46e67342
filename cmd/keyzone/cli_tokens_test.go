package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
)

// fakeCall is one request a fakeNode received.
type fakeCall struct {
	method, path, token string
	body                []byte
}

// fakeNode answers every route with a plausible body and records who
// asked what: enough to check which token a command sends and which
// routes it calls, without a server.
type fakeNode struct {
	mu    sync.Mutex
	calls []fakeCall
	// answer, when set, may answer a call itself (status, body).
	answer func(n int, c fakeCall) (int, any, bool)
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c := fakeCall{method: r.Method, path: r.URL.Path, token: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), body: b}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	n := len(f.calls)
	f.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if f.answer != nil {
		if status, v, ok := f.answer(n, c); ok {
			reply(status, v)
			return
		}
	}
	switch {
	case c.path == "/v1/whoami":
		reply(200, wire.Principal{Organization: "org-of-" + c.token, TokenID: "tok1", Role: "org-admin"})
	case c.method == "POST" && strings.HasSuffix(c.path, "/tokens"):
		var req wire.CreateTokenRequest
		_ = json.Unmarshal(b, &req)
		reply(201, wire.CreatedToken{Token: wire.Token{ID: "tok-" + req.Role, Role: req.Role}, Secret: "kzt_tok-" + req.Role + "_s3cret"})
	case c.method == "POST" && c.path == "/v1/orgs":
		var req wire.CreateOrganizationRequest
		_ = json.Unmarshal(b, &req)
		reply(201, wire.Organization{ID: "id-" + req.Name, Name: req.Name, DefaultKeyID: "k0", HomeZone: "zone-a", KeyQuota: 1000})
	case c.method == "GET" && strings.HasPrefix(c.path, "/v1/orgs/") && strings.Count(c.path, "/") == 3:
		name := strings.TrimPrefix(c.path, "/v1/orgs/")
		reply(200, wire.Organization{ID: "id-" + name, Name: name})
	default:
		reply(200, map[string]any{})
	}
}

func (f *fakeNode) reset() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

func newFakeEnv(t *testing.T, f *fakeNode) *cliTestEnv {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &cliTestEnv{url: srv.URL, env: map[string]string{"KEYZONE_ADDR": srv.URL}}
}

// Each command sends the token its kind calls for: key and crypto
// commands $KEYZONE_TOKEN; token commands and whoami $KEYZONE_TOKEN, else
// the operator's; org and cluster commands the operator's, else
// $KEYZONE_TOKEN; --token always wins.
func TestCLI_TokenChoice(t *testing.T) {
	f := &fakeNode{}
	e := newFakeEnv(t, f)
	ct := []byte("AAAA")
	commands := map[string][]string{
		"key list":          {"key", "list"},
		"key get":           {"key", "get", "k1"},
		"encrypt":           {"encrypt", "k1"},
		"decrypt":           {"decrypt"},
		"generate-data-key": {"generate-data-key", "k1"},
		"re-encrypt":        {"re-encrypt"},
		"token list":        {"token", "list", "--org", "o1"},
		"token create":      {"token", "create", "--org", "o1", "--role", "auditor", "-q"},
		"token revoke":      {"token", "revoke", "--org", "o1", "t1"},
		"whoami":            {"whoami"},
		"org list":          {"org", "list"},
		"org create":        {"org", "create", "acme"},
		"org get":           {"org", "get", "acme"},
		"org update":        {"org", "update", "acme", "--key-quota", "3"},
		"cluster status":    {"cluster", "status"},
		"cluster peers":     {"cluster", "peers"},
		"cluster remove":    {"cluster", "remove-peer", "n3"},
		"zone status":       {"zone", "status"},
	}
	org := map[string]bool{"key list": true, "key get": true, "encrypt": true, "decrypt": true, "generate-data-key": true, "re-encrypt": true}
	orgFirst := map[string]bool{"token list": true, "token create": true, "token revoke": true, "whoami": true}
	tests := []struct {
		name            string
		token, operator string
		want            func(cmd string) string // "" means refused for want of a token
	}{
		{"both", "org-tok", "op-tok", func(cmd string) string {
			if org[cmd] || orgFirst[cmd] {
				return "org-tok"
			}
			return "op-tok"
		}},
		{"operator only", "", "op-tok", func(cmd string) string {
			if org[cmd] {
				return ""
			}
			return "op-tok"
		}},
		{"org only", "org-tok", "", func(string) string { return "org-tok" }},
	}
	for _, tt := range tests {
		e.env["KEYZONE_TOKEN"], e.env["KEYZONE_OPERATOR_TOKEN"] = tt.token, tt.operator
		for name, args := range commands {
			f.reset()
			_, err := e.run(t, ct, args...)
			want := tt.want(name)
			calls := f.reset()
			if want == "" {
				if err == nil || !strings.Contains(err.Error(), "no API token: set KEYZONE_TOKEN or pass --token") || len(calls) != 0 {
					t.Errorf("%s: %s: got %v after %d calls, want refused for want of KEYZONE_TOKEN", tt.name, name, err, len(calls))
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %s: %v", tt.name, name, err)
				continue
			}
			for _, c := range calls {
				if c.token != want {
					t.Errorf("%s: %s: %s %s sent token %q, want %q", tt.name, name, c.method, c.path, c.token, want)
				}
			}
			// --token wins over both.
			if _, err := e.run(t, ct, append(args, "--token", "flag-tok")...); err != nil {
				t.Errorf("%s: %s --token: %v", tt.name, name, err)
			}
			for _, c := range f.reset() {
				if c.token != "flag-tok" {
					t.Errorf("%s: %s --token: sent %q", tt.name, name, c.token)
				}
			}
		}
	}

	// Neither: every command says which variables it reads.
	e.env["KEYZONE_TOKEN"], e.env["KEYZONE_OPERATOR_TOKEN"] = "", ""
	for args, want := range map[string]string{
		"key list":       "set KEYZONE_TOKEN or pass --token",
		"token list":     "set KEYZONE_TOKEN or KEYZONE_OPERATOR_TOKEN or pass --token",
		"cluster status": "set KEYZONE_OPERATOR_TOKEN or KEYZONE_TOKEN or pass --token",
	} {
		if _, err := e.run(t, nil, strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s without a token: got %v, want %q", args, err, want)
		}
	}

	// A token can come from a file, as a node's container has it.
	file := filepath.Join(t.TempDir(), "operator")
	if err := os.WriteFile(file, []byte("file-op-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env["KEYZONE_OPERATOR_TOKEN_FILE"] = file
	e.mustRun(t, nil, "org", "list")
	if calls := f.reset(); len(calls) != 1 || calls[0].token != "file-op-tok" {
		t.Errorf("KEYZONE_OPERATOR_TOKEN_FILE: got %+v", calls)
	}
	e.env["KEYZONE_OPERATOR_TOKEN_FILE"] = file + ".missing"
	if _, err := e.run(t, nil, "org", "list"); err == nil || !strings.Contains(err.Error(), "KEYZONE_OPERATOR_TOKEN_FILE") {
		t.Errorf("missing token file: got %v", err)
	}
}

// A crypto-user may not read keys: encrypt, decrypt, generate-data-key
// and re-encrypt call their crypto route alone.
func TestCLI_CryptoCallsNoKeyRead(t *testing.T) {
	f := &fakeNode{}
	e := newFakeEnv(t, f)
	e.env["KEYZONE_TOKEN"] = "crypto-user"
	ct := []byte("AAAA")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"encrypt", "k1", "--context", "a=b"}, "POST /v1/keys/k1/encrypt"},
		{[]string{"encrypt", "default", "-o", "json"}, "POST /v1/keys/default/encrypt"},
		{[]string{"decrypt"}, "POST /v1/decrypt"},
		{[]string{"decrypt", "--key-id", "k1"}, "POST /v1/keys/k1/decrypt"},
		{[]string{"generate-data-key", "k1", "--without-plaintext"}, "POST /v1/keys/k1/generate-data-key"},
		{[]string{"re-encrypt", "--destination-key-id", "k2"}, "POST /v1/re-encrypt"},
		{[]string{"re-encrypt", "--key-id", "k1"}, "POST /v1/keys/k1/re-encrypt"},
	} {
		f.reset()
		e.mustRun(t, ct, tt.args...)
		calls := f.reset()
		if len(calls) != 1 || calls[0].method+" "+calls[0].path != tt.want {
			var got []string
			for _, c := range calls {
				got = append(got, c.method+" "+c.path)
			}
			t.Errorf("%v called %q, want only %q", tt.args, got, tt.want)
		}
	}
}

func TestCLI_OrgAndTokenCommands_Fake(t *testing.T) {
	f := &fakeNode{}
	e := newFakeEnv(t, f)
	e.env["KEYZONE_OPERATOR_TOKEN"] = "op"

	// token create without --org asks whoami for the caller's organization.
	e.env["KEYZONE_TOKEN"] = "admin"
	secret := strings.TrimSpace(string(e.mustRun(t, nil, "token", "create", "--role", "crypto-user", "--key-id", "default", "--tag", "pci",
		"--expires-in", "720h", "--description", "app", "-q")))
	if secret != "kzt_tok-crypto-user_s3cret" {
		t.Errorf("token create -q printed %q, want the secret alone", secret)
	}
	calls := f.reset()
	if len(calls) != 2 || calls[0].path != "/v1/whoami" || calls[1].path != "/v1/orgs/org-of-admin/tokens" {
		t.Fatalf("token create without --org: calls %+v", calls)
	}
	var req map[string]any
	if err := json.Unmarshal(calls[1].body, &req); err != nil {
		t.Fatal(err)
	}
	if req["role"] != "crypto-user" || req["expires_in"] != "720h0m0s" || req["description"] != "app" ||
		len(req["key_ids"].([]any)) != 1 || len(req["tags"].([]any)) != 1 {
		t.Errorf("token create body: %s", calls[1].body)
	}
	// The operator's token belongs to no organization.
	f.answer = func(_ int, c fakeCall) (int, any, bool) {
		if c.path == "/v1/whoami" {
			return 200, wire.Principal{Operator: true}, true
		}
		return 0, nil, false
	}
	if _, err := e.run(t, nil, "token", "list", "--token", "op"); err == nil || !strings.Contains(err.Error(), "pass --org") {
		t.Errorf("token list as the operator without --org: got %v", err)
	}
	f.answer = nil
	for _, bad := range [][]string{
		{"token", "create", "--org", "o", "--role", "root"},
		{"token", "create", "--org", "o"},
		{"token", "create", "--org", "o", "--role", "auditor", "--expires-in", "0s"},
		{"token", "create", "--org", "o", "--role", "auditor", "-q", "-o", "json"},
		{"org", "update", "acme"},
		{"org", "create", "acme", "-q", "--with-tokens"},
		{"org", "create", "acme", "--key-quota", "-1"},
	} {
		f.reset()
		if _, err := e.run(t, nil, bad...); err == nil {
			t.Errorf("%v: got nil error", bad)
		}
		if calls := f.reset(); len(calls) != 0 {
			t.Errorf("%v reached the node: %+v", bad, calls)
		}
	}
	ctok := cliJSON[wire.CreatedToken](t, e.mustRun(t, nil, "token", "create", "--org", "o1", "--role", "auditor", "-o", "json"))
	if ctok.Secret == "" || ctok.Role != "auditor" {
		t.Errorf("token create -o json: got %+v", ctok)
	}
	out := string(e.mustRun(t, nil, "token", "create", "--org", "o1", "--role", "auditor"))
	if !strings.Contains(out, "kzt_tok-auditor_s3cret") || !strings.Contains(out, "shown only now") {
		t.Errorf("token create table:\n%s", out)
	}

	// org update sends only the flags given.
	f.reset()
	e.mustRun(t, nil, "org", "update", "acme", "--rate-limit", "-1")
	if calls := f.reset(); len(calls) != 1 || calls[0].method != "PATCH" || string(calls[0].body) != `{"rate_limit":-1}` {
		t.Errorf("org update --rate-limit -1: calls %+v", calls)
	}

	// org create --with-tokens --wait --exist-ok, as the compose demo
	// runs it: unavailable twice, then taken (an earlier run made it).
	f.answer = func(n int, c fakeCall) (int, any, bool) {
		switch {
		case n <= 2:
			return 503, wire.ErrorResponse{Error: wire.ErrorBody{Code: "no_leader", Message: "no leader"}}, true
		case c.method == "POST" && c.path == "/v1/orgs":
			return 409, wire.ErrorResponse{Error: wire.ErrorBody{Code: "organization_exists", Message: "exists"}}, true
		}
		return 0, nil, false
	}
	f.reset()
	out = string(e.mustRun(t, nil, "org", "create", "demo", "--with-tokens", "--wait", "30s", "--exist-ok"))
	for _, want := range []string{"Organization demo (id id-demo", "export KEYZONE_TOKEN=kzt_tok-org-admin_s3cret", "export KEYZONE_CRYPTO_TOKEN=kzt_tok-crypto-user_s3cret"} {
		if !strings.Contains(out, want) {
			t.Errorf("org create --with-tokens: %q missing from\n%s", want, out)
		}
	}
	var paths []string
	for _, c := range f.reset() {
		paths = append(paths, c.method+" "+c.path)
	}
	want := []string{"POST /v1/orgs", "POST /v1/orgs", "POST /v1/orgs", "GET /v1/orgs/demo", "POST /v1/orgs/id-demo/tokens", "POST /v1/orgs/id-demo/tokens"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("org create --with-tokens --wait --exist-ok: calls %q, want %q", paths, want)
	}
	// Without --exist-ok the conflict is an error; without --wait so is
	// the first 503.
	f.reset()
	if _, err := e.run(t, nil, "org", "create", "demo", "--wait", "30s"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("org create of an existing organization: got %v", err)
	}
	f.reset()
	if _, err := e.run(t, nil, "org", "create", "demo"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("org create without --wait while unavailable: got %v", err)
	}
	f.answer = nil
	res := cliJSON[orgWithTokens](t, e.mustRun(t, nil, "org", "create", "x", "--with-tokens", "-o", "json"))
	if res.Organization.Name != "x" || len(res.Tokens) != 2 || res.Tokens[0].Role != "org-admin" || res.Tokens[1].Role != "crypto-user" {
		t.Errorf("org create --with-tokens -o json: got %+v", res)
	}
	if id := strings.TrimSpace(string(e.mustRun(t, nil, "org", "create", "y", "-q"))); id != "id-y" {
		t.Errorf("org create -q printed %q, want the id", id)
	}
}
