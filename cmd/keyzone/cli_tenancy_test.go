package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/server"
	"github.com/keyzone/keyzone/test/clustertest"
)

// wantAPIError fails unless err is the CLI's rendering of an API answer
// with that status.
func wantAPIError(t *testing.T, err error, status string, what string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), "keyzone: "+status+" ") {
		t.Fatalf("%s: got %v, want %s", what, err, status)
	}
}

// TestCLI_Tenancy runs the org, token, whoami and audit commands against
// a real single-node zone that audits every request to a file: an
// organization made by the operator, its org-admin making a key and a
// crypto-user token, the crypto-user's secret working until revoked,
// refusals by role and across organizations, then the audit log read
// back through its filters.
func TestCLI_Tenancy(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.Open(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() }) // after the zone's shutdown
	c := clustertest.New(t, 1, clustertest.Options{Server: func(cfg *server.Config) { cfg.Audit = sink }})
	addr := c.Nodes[0].Addr()
	// The operator and the test organization's org-admin, as a user's
	// shell holds them.
	e := &cliTestEnv{env: map[string]string{"KEYZONE_ADDR": addr, "KEYZONE_TOKEN": c.Token, "KEYZONE_OPERATOR_TOKEN": c.OperatorToken}}
	as := func(token string) *cliTestEnv {
		return &cliTestEnv{env: map[string]string{"KEYZONE_ADDR": addr, "KEYZONE_TOKEN": token}}
	}

	me := cliJSON[wire.Principal](t, e.mustRun(t, nil, "whoami", "-o", "json"))
	if me.Operator || me.Organization != c.Org.ID || me.Role != "org-admin" || me.TokenID == "" {
		t.Fatalf("whoami with KEYZONE_TOKEN: got %+v, want the test organization's org-admin", me)
	}
	if out := string(e.mustRun(t, nil, "whoami", "--token", c.OperatorToken)); !strings.Contains(out, "Operator:") {
		t.Errorf("whoami as the operator:\n%s", out)
	}

	// Organizations, with the operator token from the environment.
	acme := cliJSON[wire.Organization](t, e.mustRun(t, nil, "org", "create", "acme", "--key-quota", "20", "-o", "json"))
	if acme.Name != "acme" || acme.ID == "" || acme.DefaultKeyID == "" || acme.KeyQuota != 20 || acme.HomeZone != "zone-a" {
		t.Fatalf("org create: got %+v", acme)
	}
	_, err = e.run(t, nil, "org", "create", "acme")
	wantAPIError(t, err, "409", "org create of an existing name")
	list := string(e.mustRun(t, nil, "org", "list"))
	if !strings.Contains(list, "acme") || !strings.Contains(list, clustertest.TestOrganization) || !strings.HasPrefix(list, "ID") {
		t.Errorf("org list:\n%s", list)
	}
	if got := cliJSON[wire.Organization](t, e.mustRun(t, nil, "org", "get", "acme", "-o", "json")); got.ID != acme.ID {
		t.Errorf("org get by name: got %+v", got)
	}
	up := cliJSON[wire.Organization](t, e.mustRun(t, nil, "org", "update", acme.ID, "--key-quota", "30", "--rate-limit", "-1", "-o", "json"))
	if up.KeyQuota != 30 || up.RateLimit >= 0 {
		t.Errorf("org update: got %+v", up)
	}
	// An org-admin manages no organization.
	_, err = as(c.Token).run(t, nil, "org", "list")
	wantAPIError(t, err, "403", "org list as an org-admin")

	// The operator makes acme's org-admin; the test organization's
	// org-admin (KEYZONE_TOKEN, which token commands prefer) can't.
	_, err = e.run(t, nil, "token", "create", "--org", "acme", "--role", "org-admin")
	if err == nil || !(strings.HasPrefix(err.Error(), "keyzone: 403 ") || strings.HasPrefix(err.Error(), "keyzone: 404 ")) {
		t.Fatalf("token create for another organization: got %v, want 403 or 404", err)
	}
	adminSecret := strings.TrimSpace(string(e.mustRun(t, nil, "token", "create", "--org", "acme", "--role", "org-admin", "-q", "--token", c.OperatorToken)))
	if !strings.HasPrefix(adminSecret, "kzt_") || strings.ContainsAny(adminSecret, " \n") {
		t.Fatalf("token create -q printed %q, want a secret", adminSecret)
	}
	admin := as(adminSecret)
	if me := cliJSON[wire.Principal](t, admin.mustRun(t, nil, "whoami", "-o", "json")); me.Organization != acme.ID || me.Role != "org-admin" {
		t.Fatalf("whoami with the new secret: got %+v", me)
	}

	// acme's org-admin: a key, and a crypto-user token for it alone
	// (--org defaults to acme, from whoami).
	key := strings.TrimSpace(string(admin.mustRun(t, nil, "key", "create", "--name", "payments", "-q")))
	ct := cliJSON[wire.CreatedToken](t, admin.mustRun(t, nil, "token", "create", "--role", "crypto-user", "--key-id", key,
		"--description", "payments app", "--expires-in", "24h", "-o", "json"))
	if ct.Organization != acme.ID || ct.Role != "crypto-user" || len(ct.KeyIDs) != 1 || ct.KeyIDs[0] != key || ct.ExpiresAt == nil || ct.Secret == "" {
		t.Fatalf("token create -o json: got %+v", ct)
	}
	app := as(ct.Secret)
	ciphertext := app.mustRun(t, []byte("card 4111"), "encrypt", key, "--context", "app=payments")
	if pt := app.mustRun(t, ciphertext, "decrypt", "--context", "app=payments"); string(pt) != "card 4111" {
		t.Fatalf("decrypt with the crypto-user: got %q", pt)
	}
	// Restricted to that key, it may not use the organization's default
	// key ("default" names it), which acme's org-admin may.
	_, err = app.run(t, []byte("x"), "encrypt", "default")
	wantAPIError(t, err, "403", "encrypt under the default key by a crypto-user restricted to another key")
	dct := admin.mustRun(t, []byte("x"), "encrypt", "default")
	if pt := admin.mustRun(t, dct, "decrypt"); string(pt) != "x" {
		t.Errorf("decrypt under the default key: got %q", pt)
	}
	_, err = app.run(t, nil, "key", "rotate", key)
	wantAPIError(t, err, "403", "key rotate as a crypto-user")
	_, err = app.run(t, nil, "key", "get", key)
	wantAPIError(t, err, "403", "key get as a crypto-user")
	// Another organization's token: the key does not exist for it.
	other := as(c.Token)
	_, err = other.run(t, nil, "key", "get", key)
	wantAPIError(t, err, "404", "key get from another organization")
	_, err = other.run(t, ciphertext, "decrypt", "--context", "app=payments")
	if err == nil {
		t.Fatal("decrypt of acme's ciphertext by another organization: got nil error")
	}

	// Tokens listed (never a secret), then the crypto-user revoked.
	toks := cliJSON[wire.ListTokensResponse](t, admin.mustRun(t, nil, "token", "list", "-o", "json"))
	var found bool
	for _, tok := range toks.Tokens {
		found = found || tok.ID == ct.ID
	}
	if !found || len(toks.Tokens) != 2 {
		t.Errorf("token list: got %+v, want acme's org-admin and crypto-user", toks)
	}
	table := string(admin.mustRun(t, nil, "token", "list"))
	if strings.Contains(table, ct.Secret) || !strings.Contains(table, "payments app") || !strings.Contains(table, "ids "+key) {
		t.Errorf("token list table:\n%s", table)
	}
	if out := string(admin.mustRun(t, nil, "token", "revoke", ct.ID)); !strings.Contains(out, "Revoked token "+ct.ID) {
		t.Errorf("token revoke: got %q", out)
	}
	_, err = app.run(t, []byte("after"), "encrypt", key)
	wantAPIError(t, err, "401", "encrypt with a revoked token")
	if !strings.Contains(string(admin.mustRun(t, nil, "token", "list")), "revoked") {
		t.Error("token list does not show the revocation")
	}
	// The operator revokes any organization's token.
	e.mustRun(t, nil, "token", "revoke", "--org", "acme", "--token", c.OperatorToken,
		cliJSON[wire.Principal](t, admin.mustRun(t, nil, "whoami", "-o", "json")).TokenID)
	_, err = admin.run(t, nil, "whoami")
	wantAPIError(t, err, "401", "whoami with a revoked org-admin token")

	// org create --with-tokens, as the compose demo runs it.
	demo := cliJSON[orgWithTokens](t, e.mustRun(t, nil, "org", "create", "demo", "--with-tokens", "--exist-ok", "--wait", "10s", "-o", "json"))
	if len(demo.Tokens) != 2 {
		t.Fatalf("org create --with-tokens: got %+v", demo)
	}
	for _, tok := range demo.Tokens {
		if me := cliJSON[wire.Principal](t, as(tok.Secret).mustRun(t, nil, "whoami", "-o", "json")); me.Organization != demo.Organization.ID || me.Role != tok.Role {
			t.Errorf("whoami with demo's %s token: got %+v", tok.Role, me)
		}
	}
	again := string(e.mustRun(t, nil, "org", "create", "demo", "--with-tokens", "--exist-ok"))
	if !strings.Contains(again, "export KEYZONE_TOKEN=kzt_") || !strings.Contains(again, "export KEYZONE_CRYPTO_TOKEN=kzt_") {
		t.Errorf("org create --with-tokens --exist-ok of an existing organization:\n%s", again)
	}

	// The audit log: one line per request, no secret, read back through
	// the filters.
	c.Nodes[0].Server().FlushAudit()
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{c.Token, c.OperatorToken, adminSecret, ct.Secret, demo.Tokens[0].Secret} {
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("the audit log holds a token secret")
		}
	}
	if bytes.Contains(b, []byte("card 4111")) {
		t.Fatal("the audit log holds a plaintext")
	}
	events := func(args ...string) []map[string]any {
		t.Helper()
		out := e.mustRun(t, nil, append([]string{"audit", auditFile, "-o", "json"}, args...)...)
		var evs []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				evs = append(evs, cliJSON[map[string]any](t, []byte(l)))
			}
		}
		return evs
	}
	enc := events("--org", acme.ID, "--op", "encrypt", "--key", key, "--status", "200")
	if len(enc) != 1 || enc[0]["token_id"] != ct.ID || enc[0]["role"] != "crypto-user" || enc[0]["key_version"] != float64(1) {
		t.Errorf("audit of the encryption: got %v", enc)
	}
	if rot := events("--op", "rotate-key", "--status", "403"); len(rot) != 1 || rot[0]["token_id"] != ct.ID {
		t.Errorf("audit of the refused rotation: got %v", rot)
	}
	if byTok := events("--token", ct.ID); len(byTok) < 4 {
		t.Errorf("audit --token %s: %d events, want encrypt, decrypt, rotate and get at least", ct.ID, len(byTok))
	}
	if denied := events("--status", "401"); len(denied) < 2 {
		t.Errorf("audit --status 401: got %d events, want the calls with revoked tokens", len(denied))
	}
	// test (the harness's), acme and demo.
	if created := events("--op", "create-organization", "--status", "2xx"); len(created) != 3 {
		t.Errorf("audit of organization creations: got %v", created)
	}
	table = string(e.mustRun(t, nil, "audit", auditFile, "--org", acme.ID, "--op", "encrypt"))
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) < 2 || !strings.Contains(lines[1], "crypto-user") || !strings.Contains(lines[1], key) {
		t.Errorf("audit table:\n%s", table)
	}
}
