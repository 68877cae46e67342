package api_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/keys"
)

func TestAPI_StrictJSON(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	enc := "/v1/keys/" + k.ID + "/encrypt"
	tests := []struct {
		name, path, body string
		want             string // substring of the message
	}{
		{"malformed", "/v1/keys", `{"name":`, "malformed JSON: unexpected end of input"},
		{"syntax", "/v1/keys", `{"name" "x"}`, "malformed JSON at byte"},
		{"not an object", "/v1/keys", `["x"]`, "request body must be a JSON object"},
		{"unknown field", "/v1/keys", `{"name":"x","colour":"red"}`, `unknown field "colour"`},
		{"wrong type", "/v1/keys", `{"name":7}`, `field "name": want a string, got number`},
		{"nested wrong type", "/v1/keys", `{"name":"x","rotation_policy":{"rotation_period":5}}`, `field "rotation_policy.rotation_period": want a string`},
		{"trailing object", "/v1/keys", `{"name":"x"}{"name":"y"}`, "unexpected data after the top-level object"},
		{"trailing garbage", "/v1/keys", `{"name":"x"} garbage`, "unexpected data after the top-level object"},
		{"empty body", "/v1/keys", ``, "request body is empty"},
		{"whitespace body", "/v1/keys", " \n\t", "request body is empty"},
		{"bad base64 plaintext", enc, `{"plaintext":"not base64!"}`, `field "plaintext": invalid standard base64`},
		{"bad base64 ad", enc, `{"plaintext":"aGk=","associated_data":"%%%"}`, `field "associated_data": invalid standard base64`},
		{"url-safe base64", enc, `{"plaintext":"_-_-"}`, `field "plaintext": invalid standard base64`},
		{"bad base64 ciphertext", "/v1/decrypt", `{"ciphertext":"@@@@"}`, `field "ciphertext": invalid standard base64`},
		{"bad destination ad", "/v1/re-encrypt", `{"ciphertext":"aGk=","destination_associated_data":"a"}`, `field "destination_associated_data": invalid standard base64`},
		{"base64 not a string", enc, `{"plaintext":12}`, `field "plaintext": want a base64 string, got number`},
		{"context not a map of strings", enc, `{"plaintext":"aGk=","encryption_context":{"a":1}}`, `field "encryption_context": want a string, got number`},
		{"lifecycle with a field", "/v1/keys/" + k.ID + "/disable", `{"force":true}`, `unknown field "force"`},
		{"lifecycle with trailing data", "/v1/keys/" + k.ID + "/disable", `{}x`, "unexpected data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, "POST", tt.path, tt.body)
			body := apiError(t, rec, http.StatusBadRequest)
			if body.Code != wire.CodeInvalidArgument || !strings.Contains(body.Message, tt.want) {
				t.Errorf("body: got %+v, want invalid_argument containing %q", body, tt.want)
			}
		})
	}
}

func TestAPI_BodyLimit(t *testing.T) {
	e := newEnv(t, func(c *apiConfig) { c.MaxPayload = 1024 })
	k := e.createKey(t, "k")
	// A plaintext at the limit fits in the body limit derived from it.
	pt := base64.StdEncoding.EncodeToString(make([]byte, 1024))
	if rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+pt+`"}`); rec.Code != http.StatusOK {
		t.Fatalf("plaintext at the limit: got %d %s", rec.Code, rec.Body)
	}
	huge := `{"plaintext":"` + strings.Repeat("A", 1<<20) + `"}`
	for _, path := range []string{"/v1/keys/" + k.ID + "/encrypt", "/v1/keys", "/v1/keys/" + k.ID + "/disable"} {
		body := apiError(t, e.do(t, "POST", path, huge), http.StatusRequestEntityTooLarge)
		if body.Code != wire.CodePayloadTooLarge || !strings.Contains(body.Message, "request body is larger than") {
			t.Errorf("%s: got %+v", path, body)
		}
	}
}

func TestAPI_LifecycleEmptyBody(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	path := "/v1/keys/" + k.ID + "/protect"
	for _, tt := range []struct {
		name, body, contentType string
	}{
		{"no body", "", ""},
		{"no body with content type", "", "application/json"},
		{"empty object", "{}", "application/json"},
		{"empty object without content type", "{}", ""},
		{"empty object with other content type", " {} \n", "text/plain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
		})
	}
	// schedule-deletion's body is optional too (the server's default window).
	e.do(t, "POST", path[:len(path)-len("protect")]+"unprotect", "")
	if rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/schedule-deletion", ""); rec.Code != http.StatusOK {
		t.Errorf("schedule-deletion without body: got %d %s", rec.Code, rec.Body)
	}
}

func TestAPI_IfMatch(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	tests := []struct {
		name    string
		values  []string
		status  int
		wantRev uint64
	}{
		{"absent", nil, 200, 0},
		{"bare", []string{"REV"}, 200, 1},
		{"quoted", []string{`"REV"`}, 200, 1},
		{"star", []string{"*"}, 200, 0},
		{"stale revision", []string{"999"}, 412, 999},
		{"not a number", []string{"abc"}, 400, 0},
		{"zero", []string{"0"}, 400, 0},
		{"negative", []string{"-3"}, 400, 0},
		{"weak etag", []string{`W/"REV"`}, 400, 0},
		{"list", []string{`"1", "2"`}, 400, 0},
		{"two headers", []string{"REV", "REV"}, 400, 0},
		{"half quoted", []string{`"12`}, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := decode[wire.Key](t, e.do(t, "GET", "/v1/keys/"+k.ID, ""))
			rev := strconv.FormatUint(cur.Revision, 10)
			var hdr []string
			for _, v := range tt.values {
				hdr = append(hdr, "If-Match", strings.ReplaceAll(v, "REV", rev))
			}
			before := len(e.keys.Calls())
			rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/protect", "", hdr...)
			if rec.Code != tt.status {
				t.Fatalf("status: got %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			calls := e.keys.Calls()
			if tt.status == 400 {
				if len(calls) != before {
					t.Errorf("bad If-Match reached the service")
				}
				return
			}
			want := tt.wantRev
			if want == 1 {
				want = cur.Revision
			}
			if got := calls[len(calls)-1].Params.(keys.KeyRef).IfRevision; got != want {
				t.Errorf("IfRevision: got %d, want %d", got, want)
			}
		})
	}
	// PATCH, rotate and schedule-deletion honour it too.
	for _, r := range [][2]string{{"PATCH", "/v1/keys/" + k.ID}, {"POST", "/v1/keys/" + k.ID + "/rotate"}, {"POST", "/v1/keys/" + k.ID + "/schedule-deletion"}} {
		body := `{}`
		if r[0] == "PATCH" {
			body = `{"description":"x"}`
		}
		if rec := e.do(t, r[0], r[1], body, "If-Match", "999"); rec.Code != http.StatusPreconditionFailed {
			t.Errorf("%s %s with a stale If-Match: got %d, want 412", r[0], r[1], rec.Code)
		}
	}
}

func TestAPI_IdempotencyKey(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		values []string
		status int
	}{
		{"absent", nil, 201},
		{"ok", []string{"req-1"}, 201},
		{"with spaces inside", []string{"a b c"}, 201},
		{"max length", []string{strings.Repeat("x", 128)}, 201},
		{"too long", []string{strings.Repeat("x", 129)}, 400},
		{"empty", []string{""}, 400},
		{"non-ascii", []string{"clé"}, 400},
		{"control", []string{"a\x01b"}, 400},
		{"two headers", []string{"a", "b"}, 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/keys", strings.NewReader(`{"name":"k`+strconv.Itoa(i)+`"}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			for _, v := range tt.values {
				req.Header["Idempotency-Key"] = append(req.Header["Idempotency-Key"], v)
			}
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status: got %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status == 400 {
				if body := apiError(t, rec, 400); !strings.Contains(body.Message, "Idempotency-Key") {
					t.Errorf("message: got %q", body.Message)
				}
			}
		})
	}
	// A repeat returns the first result; rotate validates the header too.
	first := e.do(t, "POST", "/v1/keys", `{"name":"idem"}`, "Idempotency-Key", "same")
	again := e.do(t, "POST", "/v1/keys", `{"name":"idem"}`, "Idempotency-Key", "same")
	if a, b := decode[wire.Key](t, first), decode[wire.Key](t, again); a.ID != b.ID {
		t.Errorf("repeat: got %s then %s", a.ID, b.ID)
	}
	k := e.createKey(t, "rot")
	apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/rotate", "", "Idempotency-Key", strings.Repeat("y", 200)), 400)
	e.do(t, "POST", "/v1/keys/"+k.ID+"/rotate", "", "Idempotency-Key", "r1")
	if p := e.keys.LastCall().Params.(keys.RotateParams); p.IdempotencyKey != "r1" {
		t.Errorf("rotate params: got %+v", p)
	}
}

// The crypto routes take the bodies clients send by a fast path and leave
// every other valid body to encoding/json: all reach the service alike,
// and the answers are the same JSON.
func TestAPI_CryptoBodies(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	for _, body := range []string{
		`{"plaintext":"aGk=","encryption_context":{"a":"b"}}`,
		` { "plaintext" : "aGk=" , "encryption_context" : { "a" : "b" } } `,
		`{"Plaintext":"aGk=","encryption_context":{"a":"b"}}`,
		`{"plaintext":"a\u0047k=","encryption_context":{"\u0061":"b"}}`,
		`{"plaintext":"aGk=","encryption_context":{"a":"x"},"encryption_context":{"a":"b"}}`,
	} {
		rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", body)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", body, rec.Code, rec.Body)
		}
		p := e.keys.LastCall().Params.(keys.EncryptParams)
		if string(p.Plaintext) != "hi" || len(p.Context.Map) != 1 || p.Context.Map["a"] != "b" {
			t.Errorf("%s: service got plaintext %q, context %v", body, p.Plaintext, p.Context.Map)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("Content-Type: got %q", ct)
		}
		enc := decode[wire.EncryptResponse](t, rec)
		if enc.KeyID != k.ID || enc.KeyVersion != 1 || len(enc.Ciphertext) == 0 {
			t.Fatalf("encrypt answer: %+v", enc)
		}
		rec = e.do(t, "POST", "/v1/decrypt", `{"ciphertext":"`+base64.StdEncoding.EncodeToString(enc.Ciphertext)+`","encryption_context":{"a":"b"}}`)
		if dec := decode[wire.DecryptResponse](t, rec); rec.Code != http.StatusOK || string(dec.Plaintext) != "hi" || dec.KeyID != k.ID {
			t.Errorf("decrypt: got %d %s", rec.Code, rec.Body)
		}
	}
}
