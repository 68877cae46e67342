package test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// TestHostile_ImportAndTenancyRoutes sends malformed, mistyped, oversized
// and mismatched requests to the import routes (BYOK) and to the
// organization and token routes of every node of a real zone: each answer
// is the API's JSON error with the expected 4xx and stable code (never a
// 5xx), no answer holds the material, a token secret or the operator
// token, the API logs nothing at Error level, and nothing changed.
func TestHostile_ImportAndTenancyRoutes(t *testing.T) {
	t.Parallel()
	c, logs := newLoggedZone(t)
	ctx := testCtx(t, 90*time.Second)
	sec := newSecrets()
	material := make([]byte, 32)
	rand.Read(material)
	sec.add("imported material", material)
	sec.add("operator token", []byte(c.OperatorToken))
	sec.add("org-admin token", []byte(c.Token))

	sdk, err := client.New(c.Nodes[0].Addr(), c.Token)
	if err != nil {
		t.Fatal(err)
	}
	op, err := client.New(c.Nodes[0].Addr(), c.OperatorToken)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := sdk.CreateKey(ctx, wire.CreateKeyRequest{Name: "ext", Origin: "external"})
	if err != nil {
		t.Fatal(err)
	}
	own, err := sdk.CreateKey(ctx, wire.CreateKeyRequest{Name: "own"})
	if err != nil {
		t.Fatal(err)
	}
	params, err := sdk.ImportParameters(ctx, ext.ID)
	if err != nil {
		t.Fatal(err)
	}
	crypto, err := op.CreateToken(ctx, c.Org.ID, wire.CreateTokenRequest{Role: "crypto-user"})
	if err != nil {
		t.Fatal(err)
	}
	sec.add("crypto-user token", []byte(crypto.Secret))
	c.WaitToken(crypto.Secret, 10*time.Second)

	std := base64.StdEncoding.EncodeToString
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	garbage := make([]byte, 80)
	rand.Read(garbage)
	importPath := "/v1/keys/" + ext.ID + "/import"
	orgPath := "/v1/orgs/" + c.Org.ID
	tooManyIDs := make([]string, 65)
	for i := range tooManyIDs {
		tooManyIDs[i] = own.ID
	}
	manyIDs, _ := json.Marshal(tooManyIDs)
	operator := "Bearer " + c.OperatorToken

	const (
		s400, s401, s403, s404, s409, s413 = 400, 401, 403, 404, 409, 413
		inv, unauth, forbidden             = "invalid_argument", "unauthorized", "forbidden"
	)
	cases := []hostileCase{
		// Imports.
		{name: "import: not JSON", method: "POST", path: importPath, body: `{`, status: s400, code: inv},
		{name: "import: token of the wrong type", method: "POST", path: importPath, body: `{"import_token":123,"encrypted_material":"AAAA"}`, status: s400, code: inv},
		{name: "import: material not base64", method: "POST", path: importPath, body: `{"import_token":` + q(params.ImportToken) + `,"encrypted_material":"***"}`, status: s400, code: inv},
		{name: "import: neither material", method: "POST", path: importPath, body: `{"import_token":` + q(params.ImportToken) + `}`, status: s400, code: inv},
		{name: "import: both materials", method: "POST", path: importPath, body: `{"import_token":` + q(params.ImportToken) + `,"encrypted_material":"` + std(garbage) + `","key_material":"` + std(material) + `"}`, status: s400, code: inv},
		{name: "import: a made-up token", method: "POST", path: importPath, body: `{"import_token":"kzimp_x","encrypted_material":"` + std(garbage) + `"}`, status: s400, code: wire.CodeImportTokenInvalid},
		{name: "import: a 10 kB token", method: "POST", path: importPath, body: `{"import_token":` + q(strings.Repeat("k", 10000)) + `,"encrypted_material":"` + std(garbage) + `"}`, status: s400, code: wire.CodeImportTokenInvalid},
		{name: "import: material not sealed to the key", method: "POST", path: importPath, body: `{"import_token":` + q(params.ImportToken) + `,"encrypted_material":"` + std(garbage) + `"}`, status: s400, code: wire.CodeImportUnseal},
		{name: "import: raw material over http", method: "POST", path: importPath, body: `{"key_material":"` + std(material) + `"}`, status: s403, code: wire.CodeRawImportRefused},
		{name: "import: 1 MB body", method: "POST", path: importPath, body: `{"import_token":"` + strings.Repeat("x", 1<<20) + `"}`, status: s413, code: wire.CodePayloadTooLarge},
		{name: "import: into a key of origin keyzone", method: "POST", path: "/v1/keys/" + own.ID + "/import", body: `{"import_token":` + q(params.ImportToken) + `,"encrypted_material":"` + std(garbage) + `"}`, status: s409, code: wire.CodeOriginNotExternal},
		{name: "import parameters: origin keyzone", method: "GET", path: "/v1/keys/" + own.ID + "/import-parameters", status: s409, code: wire.CodeOriginNotExternal},
		{name: "import parameters: missing key", method: "GET", path: "/v1/keys/00000000-0000-4000-8000-000000000000/import-parameters", status: s404, code: wire.CodeKeyNotFound},
		{name: "import: by a crypto-user", method: "POST", path: importPath, body: `{"key_material":"` + std(material) + `"}`, auth: "Bearer " + crypto.Secret, status: s403, code: forbidden},

		// Organizations.
		{name: "org: not JSON", method: "POST", path: "/v1/orgs", body: `[`, auth: operator, status: s400, code: inv},
		{name: "org: no name", method: "POST", path: "/v1/orgs", body: `{}`, auth: operator, status: s400, code: inv},
		{name: "org: name of 65", method: "POST", path: "/v1/orgs", body: `{"name":"` + strings.Repeat("a", 65) + `"}`, auth: operator, status: s400, code: inv},
		{name: "org: name with a slash", method: "POST", path: "/v1/orgs", body: `{"name":"a/b"}`, auth: operator, status: s400, code: inv},
		{name: "org: name with a control character", method: "POST", path: "/v1/orgs", body: `{"name":"a\u0000b"}`, auth: operator, status: s400, code: inv},
		{name: "org: upper case", method: "POST", path: "/v1/orgs", body: `{"name":"Acme"}`, auth: operator, status: s400, code: inv},
		{name: "org: negative quota", method: "POST", path: "/v1/orgs", body: `{"name":"neg","key_quota":-1}`, auth: operator, status: s400, code: inv},
		{name: "org: quota past int", method: "POST", path: "/v1/orgs", body: `{"name":"big","key_quota":1e30}`, auth: operator, status: s400, code: inv},
		{name: "org: rate as a string", method: "POST", path: "/v1/orgs", body: `{"name":"r","rate_limit":"fast"}`, auth: operator, status: s400, code: inv},
		{name: "org: the test organization again", method: "POST", path: "/v1/orgs", body: `{"name":` + q(c.Org.Name) + `}`, auth: operator, status: s409, code: wire.CodeOrganizationExists},
		{name: "org: by an org-admin", method: "POST", path: "/v1/orgs", body: `{"name":"mine"}`, status: s403, code: forbidden},
		{name: "org: missing", method: "GET", path: "/v1/orgs/nope", auth: operator, status: s404, code: wire.CodeOrganizationNotFound},
		{name: "org: escaped slash (no such route)", method: "GET", path: "/v1/orgs/a%2Fb", auth: operator, status: s404, code: wire.CodeNotFound},
		{name: "org: 2 kB name", method: "GET", path: "/v1/orgs/" + strings.Repeat("o", 2048), auth: operator, status: s404, code: wire.CodeOrganizationNotFound},
		{name: "org: patch a negative burst", method: "PATCH", path: orgPath, body: `{"rate_burst":-3}`, auth: operator, status: s400, code: inv},
		{name: "org: patch not JSON", method: "PATCH", path: orgPath, body: `nope`, auth: operator, status: s400, code: inv},

		// Tokens.
		{name: "token: no role", method: "POST", path: orgPath + "/tokens", body: `{}`, status: s400, code: inv},
		{name: "token: role root", method: "POST", path: orgPath + "/tokens", body: `{"role":"root"}`, status: s400, code: inv},
		{name: "token: role of the wrong type", method: "POST", path: orgPath + "/tokens", body: `{"role":["org-admin"]}`, status: s400, code: inv},
		{name: "token: expires_in forever", method: "POST", path: orgPath + "/tokens", body: `{"role":"auditor","expires_in":"forever"}`, status: s400, code: inv},
		{name: "token: expires_in negative", method: "POST", path: orgPath + "/tokens", body: `{"role":"auditor","expires_in":"-1h"}`, status: s400, code: inv},
		{name: "token: expires_in a century", method: "POST", path: orgPath + "/tokens", body: `{"role":"auditor","expires_in":"876000h"}`, status: s400, code: inv},
		{name: "token: a bad key id", method: "POST", path: orgPath + "/tokens", body: `{"role":"crypto-user","key_ids":["../../x"]}`, status: s400, code: inv},
		{name: "token: 65 key ids", method: "POST", path: orgPath + "/tokens", body: `{"role":"crypto-user","key_ids":` + string(manyIDs) + `}`, status: s400, code: inv},
		{name: "token: tags on an org-admin", method: "POST", path: orgPath + "/tokens", body: `{"role":"org-admin","tags":["x"]}`, status: s400, code: inv},
		{name: "token: a 10 kB description", method: "POST", path: orgPath + "/tokens", body: `{"role":"auditor","description":` + q(strings.Repeat("d", 10000)) + `}`, status: s400, code: inv},
		{name: "token: by a crypto-user", method: "POST", path: orgPath + "/tokens", body: `{"role":"org-admin"}`, auth: "Bearer " + crypto.Secret, status: s403, code: forbidden},
		{name: "token: another organization", method: "POST", path: "/v1/orgs/nope/tokens", body: `{"role":"org-admin"}`, status: s404, code: wire.CodeOrganizationNotFound},
		{name: "token: revoke a missing one", method: "DELETE", path: orgPath + "/tokens/0000000000000000", status: s404, code: wire.CodeTokenNotFound},
		{name: "token: revoke a 2 kB id", method: "DELETE", path: orgPath + "/tokens/" + strings.Repeat("t", 2048), status: s404, code: wire.CodeTokenNotFound},

		// Secrets that are no token.
		{name: "auth: a made-up token of the right shape", method: "GET", path: "/v1/whoami", auth: "Bearer kzt_0123456789abcdef_" + strings.Repeat("A", 43), status: s401, code: unauth},
		{name: "auth: the crypto-user's secret cut short", method: "GET", path: "/v1/whoami", auth: "Bearer " + crypto.Secret[:len(crypto.Secret)-1], status: s401, code: unauth},
		{name: "auth: the operator token as Basic", method: "GET", path: "/v1/whoami", auth: "Basic " + c.OperatorToken, status: s401, code: unauth},
		{name: "auth: two tokens", method: "GET", path: "/v1/whoami", auth: "Bearer " + c.Token + " " + crypto.Secret, status: s401, code: unauth},
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	for _, n := range c.Nodes {
		for _, tc := range cases {
			a := sendHostile(hc, n.Addr(), c.Token, tc)
			checkJSONError(t, fmt.Sprintf("%s: %s %.60s (%s)", n.ID, tc.method, tc.path, tc.name), a, tc.status, tc.code, sec)
		}
	}

	// Nothing hostile changed anything: the external key still waits for
	// its material and takes it, sealed, with the same parameters; no
	// organization appeared, and the organization's tokens are the two
	// the test made.
	if k, err := sdk.GetKey(ctx, ext.ID); err != nil || k.State != "pending_import" {
		t.Fatalf("the external key after the hostile requests: %+v, %v", k, err)
	}
	if k, err := sdk.ImportMaterial(ctx, ext.ID, material); err != nil || k.State != "enabled" {
		t.Fatalf("a sealed import after the hostile requests: %+v, %v", k, err)
	}
	orgs, err := op.ListOrganizations(ctx)
	if err != nil || len(orgs.Organizations) != 1 {
		t.Errorf("organizations after the hostile requests: %+v, %v", orgs, err)
	}
	toks, err := op.ListTokens(ctx, c.Org.ID)
	if err != nil || len(toks.Tokens) != 2 {
		t.Errorf("tokens after the hostile requests: %+v, %v", toks, err)
	}
	for _, tok := range toks.Tokens {
		if tok.RevokedAt != nil {
			t.Errorf("token %s was revoked", tok.ID)
		}
	}
	if lines := apiErrorLines(logs); len(lines) > 0 {
		t.Errorf("the API logged %d lines at Error level:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if line := firstSecretLine(logs, sec); line != "" {
		t.Errorf("the server log holds a secret: %s", line)
	}
}
