package api_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

func (e *testEnv) externalKey(t *testing.T) wire.Key {
	t.Helper()
	rec := e.do(t, "POST", "/v1/keys", `{"name":"ext","origin":"external"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	k := decode[wire.Key](t, rec)
	// The fake creates every key enabled with Keyzone's material; make
	// this one wait for an import.
	stored := e.keys.Put(fsm.Key{ID: k.ID, Organization: fsm.DefaultOrganization, Name: "ext", Origin: fsm.OriginExternal,
		State: fsm.KeyStatePendingImport, PrimaryZone: apitest.Zone, Versions: []fsm.Version{}, Tags: []string{}, ReplicaZones: []string{}})
	k.ID = stored.ID
	return k
}

func TestAPI_ImportParameters(t *testing.T) {
	e := newEnv(t)
	k := e.externalKey(t)
	rec := e.do(t, "GET", "/v1/keys/"+k.ID+"/import-parameters", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	p := decode[wire.ImportParameters](t, rec)
	if p.KeyID != k.ID || len(p.PublicKey) != 32 || p.ImportToken == "" || p.Algorithm != keys.ImportAlgorithm ||
		!bytes.Equal(p.HPKEInfo, keys.ImportInfo(k.ID, p.TokenID)) || p.ExpiresAt.IsZero() {
		t.Errorf("import parameters %+v", p)
	}
}

// TestAPI_Import_TLS checks that the handler tells the service whether
// the request came over TLS, which alone may carry raw material.
func TestAPI_Import_TLS(t *testing.T) {
	e := newEnv(t)
	k := e.externalKey(t)
	body, _ := json.Marshal(wire.ImportKeyMaterialRequest{KeyMaterial: bytes.Repeat([]byte{1}, 32)})
	for _, tc := range []struct {
		name   string
		srv    *httptest.Server
		status int
	}{
		{"plain", httptest.NewServer(e.handler), http.StatusForbidden},
		{"tls", httptest.NewTLSServer(e.handler), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.srv.Close()
			hc := tc.srv.Client()
			if tr, ok := hc.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
				tr.TLSClientConfig.MinVersion = tls.VersionTLS12
			}
			req, _ := http.NewRequest("POST", tc.srv.URL+"/v1/keys/"+k.ID+"/import", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			p, ok := e.keys.LastCall().Params.(keys.ImportMaterialParams)
			if !ok || p.OverTLS != (tc.name == "tls") || len(p.Raw) != 32 {
				t.Errorf("service called with %+v", e.keys.LastCall())
			}
		})
	}
}

// TestAPI_Import_Errors checks the answer to every import refusal.
func TestAPI_Import_Errors(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("import into key k: %w", fsm.ErrImportTokenInvalid), 400, wire.CodeImportTokenInvalid},
		{fmt.Errorf("import into key k: %w", fsm.ErrImportTokenExpired), 400, wire.CodeImportTokenExpired},
		{fmt.Errorf("import into key k: %w", fsm.ErrImportTokenUsed), 409, wire.CodeImportTokenUsed},
		{fmt.Errorf("import into key k: %w", fsm.ErrNotExternal), 409, wire.CodeOriginNotExternal},
		{fmt.Errorf("import into key k: %w", keys.ErrImportUnseal), 400, wire.CodeImportUnseal},
		{keys.ErrRawImportRefused, 403, wire.CodeRawImportRefused},
		{&fsm.TransitionError{KeyID: "k", From: fsm.KeyStatePendingDeletion, Op: fsm.OpImport}, 409, wire.CodeInvalidState},
		{fmt.Errorf("imported key material is 8 bytes: %w", keys.ErrInvalidArgument), 400, wire.CodeInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			e := newEnv(t)
			k := e.externalKey(t)
			e.keys.Fail = func(string) error { return c.err }
			rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/import", `{"import_token":"kzimp_x","encrypted_material":"AAAA"}`)
			body := apiError(t, rec, c.status)
			if body.Code != c.code {
				t.Errorf("code %s, want %s", body.Code, c.code)
			}
			if c.err == keys.ErrImportUnseal && body.Message != keys.ErrImportUnseal.Error() {
				t.Errorf("message %q says more than %q", body.Message, keys.ErrImportUnseal.Error())
			}
		})
	}
}
