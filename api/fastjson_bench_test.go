package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
)

// BenchmarkEncryptRoute serves a 32-byte encrypt through the whole router
// (authentication, middleware, JSON both ways, the fake's AES-GCM).
func BenchmarkEncryptRoute(b *testing.B) {
	tenants := apitest.NewTenants()
	tenants.AddToken(testToken, fsm.DefaultOrganization, fsm.RoleOrgAdmin)
	h, err := api.NewRouter(api.Config{Keys: apitest.NewKeys(), Cluster: apitest.NewCluster(), Tenants: tenants, OperatorToken: operatorToken, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	serve := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := serve("/v1/keys", `{"name":"bench"}`)
	var k wire.Key
	if err := json.Unmarshal(rec.Body.Bytes(), &k); err != nil {
		b.Fatal(rec.Code, rec.Body)
	}
	path := "/v1/keys/" + k.ID + "/encrypt"
	body := `{"plaintext":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`
	if rec := serve(path, body); rec.Code != 200 {
		b.Fatal(rec.Code, rec.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		serve(path, body)
	}
}
