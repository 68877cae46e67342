package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAPI_CreateKey(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "POST", "/v1/keys", `{"name":"orders","description":"d","tags":["a","b"],"protected":true,
		"rotation_policy":{"rotation_period":"720h"},"replica_zones":["zone-b"]}`, "Idempotency-Key", "create-1")
	if rec.Code != http.StatusCreated {
		t.Fatalf("status: got %d %s, want 201", rec.Code, rec.Body)
	}
	k := decode[wire.Key](t, rec)
	if got, want := rec.Header().Get("ETag"), strconv.Quote(strconv.FormatUint(k.Revision, 10)); got != want {
		t.Errorf("ETag: got %q, want %q", got, want)
	}
	if got, want := rec.Header().Get("Location"), "/v1/keys/"+k.ID; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	if k.Name != "orders" || k.Description != "d" || !slices.Equal(k.Tags, []string{"a", "b"}) || !k.Protected ||
		k.State != "enabled" || k.CurrentVersion != 1 || k.Usage != fsm.UsageSymmetricEncryption ||
		k.Algorithm != fsm.AlgorithmAES256GCM || k.Origin != fsm.OriginKeyzone ||
		!slices.Equal(k.ReplicaZones, []string{"zone-b"}) || k.Organization != fsm.DefaultOrganization {
		t.Errorf("key: got %+v", k)
	}
	if k.RotationPolicy.RotationPeriod != "720h0m0s" || k.RotationPolicy.NextRotationAt.IsZero() {
		t.Errorf("rotation policy: got %+v, want 720h0m0s with a next rotation", k.RotationPolicy)
	}
	p := e.keys.LastCall().Params.(keys.CreateParams)
	if p.IdempotencyKey != "create-1" || p.RotationPeriod != 720*time.Hour || p.Organization != fsm.DefaultOrganization {
		t.Errorf("params: got %+v", p)
	}
}

func TestAPI_KeyJSONShape(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "POST", "/v1/keys", `{"name":"plain"}`)
	m := fields(t, rec.Body.Bytes())
	want := []string{"algorithm", "created_at", "current_version", "description", "id", "name", "organization",
		"origin", "primary_zone", "protected", "replica_zones", "revision", "rotation_policy", "state", "tags",
		"updated_at", "usage"}
	if got := sortedKeys(m); !slices.Equal(got, want) {
		t.Errorf("fields: got %v, want %v", got, want)
	}
	for _, f := range []string{"tags", "replica_zones"} {
		if string(m[f]) != "[]" {
			t.Errorf("%s: got %s, want []", f, m[f])
		}
	}
	if got, want := string(m["rotation_policy"]), `{"rotation_period":""}`; got != want {
		t.Errorf("rotation_policy: got %s, want %s", got, want)
	}
	var created string
	if err := json.Unmarshal(m["created_at"], &created); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, created); err != nil {
		t.Errorf("created_at %q: %v", created, err)
	}
	if bytes.Contains(rec.Body.Bytes(), []byte("versions")) || bytes.Contains(rec.Body.Bytes(), []byte("wrapped")) {
		t.Errorf("key leaks versions: %s", rec.Body)
	}
}

func TestAPI_GetKey(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	rec := e.do(t, "GET", "/v1/keys/"+k.ID, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	if got := decode[wire.Key](t, rec); got.ID != k.ID || got.Revision != k.Revision {
		t.Errorf("got %+v, want %+v", got, k)
	}
	if rec.Header().Get("ETag") == "" {
		t.Error("no ETag")
	}
	if c := e.keys.LastCall().Params.(apitest.GetKeyCall); c.Stale || c.KeyID != k.ID {
		t.Errorf("call: got %+v, want a consistent read of %s", c, k.ID)
	}
	e.do(t, "GET", "/v1/keys/"+k.ID+"?stale=true", "")
	if c := e.keys.LastCall().Params.(apitest.GetKeyCall); !c.Stale {
		t.Errorf("stale=true: got %+v, want a stale read", c)
	}
	rec = e.do(t, "GET", "/v1/keys/"+k.ID+"?stale=maybe", "")
	apiError(t, rec, http.StatusBadRequest)
}

func TestAPI_ListKeys(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		e.createKey(t, n)
	}
	rec := e.do(t, "GET", "/v1/keys?page_size=2", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	page := decode[wire.ListKeysResponse](t, rec)
	if len(page.Keys) != 2 || page.NextPageToken == "" {
		t.Fatalf("page 1: got %d keys, token %q; want 2 and a token", len(page.Keys), page.NextPageToken)
	}
	page = decode[wire.ListKeysResponse](t, e.do(t, "GET", "/v1/keys?page_size=2&page_token="+page.NextPageToken, ""))
	if len(page.Keys) != 1 || page.NextPageToken != "" || page.Keys[0].Name != "c" {
		t.Fatalf("page 2: got %+v", page)
	}

	e.do(t, "GET", "/v1/keys?name=b&tag=t&state=disabled&stale=1&page_token=x", "")
	p := e.keys.LastCall().Params.(keys.ListParams)
	want := keys.ListParams{Organization: fsm.DefaultOrganization, Name: "b", Tag: "t", State: fsm.KeyStateDisabled, PageToken: "x", Stale: true}
	if p != want {
		t.Errorf("params: got %+v, want %+v", p, want)
	}

	rec = e.do(t, "GET", "/v1/keys?name=none", "")
	if got := string(fields(t, rec.Body.Bytes())["keys"]); got != "[]" {
		t.Errorf("empty list: got keys %s, want []", got)
	}
	for _, q := range []string{"page_size=x", "page_size=-1", "stale=nope"} {
		apiError(t, e.do(t, "GET", "/v1/keys?"+q, ""), http.StatusBadRequest)
	}
}

func TestAPI_UpdateKey(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	rec := e.do(t, "PATCH", "/v1/keys/"+k.ID, `{"description":"new","tags":["x"],"rotation_policy":{"rotation_period":"24h"}}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	got := decode[wire.Key](t, rec)
	if got.Name != "k" || got.Description != "new" || !slices.Equal(got.Tags, []string{"x"}) ||
		got.RotationPolicy.RotationPeriod != "24h0m0s" || got.Revision <= k.Revision {
		t.Errorf("got %+v", got)
	}
	p := e.keys.LastCall().Params.(keys.UpdateParams)
	if p.Name != nil || p.Description == nil || *p.RotationPeriod != 24*time.Hour {
		t.Errorf("params: got %+v", p)
	}
	rec = e.do(t, "PATCH", "/v1/keys/"+k.ID, `{"rotation_policy":{"rotation_period":""}}`)
	if got := decode[wire.Key](t, rec); got.RotationPolicy.RotationPeriod != "" || !got.RotationPolicy.NextRotationAt.IsZero() {
		t.Errorf("rotation off: got %+v", got.RotationPolicy)
	}
	if m := fields(t, rec.Body.Bytes()); string(m["rotation_policy"]) != `{"rotation_period":""}` {
		t.Errorf("rotation_policy: got %s", m["rotation_policy"])
	}
	body := apiError(t, e.do(t, "PATCH", "/v1/keys/"+k.ID, `{"rotation_policy":{"rotation_period":"soon"}}`), http.StatusBadRequest)
	if want := `field "rotation_policy.rotation_period": invalid duration "soon": want a Go duration such as "720h"`; body.Message != want {
		t.Errorf("message: got %q, want %q", body.Message, want)
	}
}

func TestAPI_Lifecycle(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	steps := []struct {
		op    string
		state string
		check func(wire.Key) bool
	}{
		{"disable", "disabled", nil},
		{"enable", "enabled", nil},
		{"protect", "enabled", func(k wire.Key) bool { return k.Protected }},
		{"unprotect", "enabled", func(k wire.Key) bool { return !k.Protected }},
		{"rotate", "enabled", func(k wire.Key) bool { return k.CurrentVersion == 2 }},
		{"schedule-deletion", "pending_deletion", func(k wire.Key) bool { return !k.DeletionAt.IsZero() }},
		{"cancel-deletion", "disabled", func(k wire.Key) bool { return k.DeletionAt.IsZero() }},
	}
	for _, s := range steps {
		rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/"+s.op, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", s.op, rec.Code, rec.Body)
		}
		got := decode[wire.Key](t, rec)
		if got.State != s.state || (s.check != nil && !s.check(got)) {
			t.Errorf("%s: got %+v", s.op, got)
		}
		if want := strconv.Quote(strconv.FormatUint(got.Revision, 10)); rec.Header().Get("ETag") != want {
			t.Errorf("%s: ETag got %q, want %q", s.op, rec.Header().Get("ETag"), want)
		}
		_, pending := fields(t, rec.Body.Bytes())["deletion_at"]
		if pending != (s.state == "pending_deletion") {
			t.Errorf("%s: deletion_at present %v in state %s", s.op, pending, s.state)
		}
	}
}

func TestAPI_ScheduleDeletionWindow(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/schedule-deletion", `{"pending_window":"48h"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	if p := e.keys.LastCall().Params.(keys.ScheduleDeletionParams); p.PendingWindow != 48*time.Hour {
		t.Errorf("window: got %v, want 48h", p.PendingWindow)
	}
	got := decode[wire.Key](t, rec)
	if d := got.DeletionAt.Sub(got.UpdatedAt); d != 48*time.Hour {
		t.Errorf("deletion_at - updated_at: got %v, want 48h", d)
	}
	body := apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/schedule-deletion", `{"pending_window":"2 days"}`), http.StatusBadRequest)
	if body.Code != wire.CodeInvalidArgument {
		t.Errorf("code: got %q", body.Code)
	}
}

func TestAPI_Versions(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	e.do(t, "POST", "/v1/keys/"+k.ID+"/rotate", "")
	rec := e.do(t, "GET", "/v1/keys/"+k.ID+"/versions", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	v := decode[wire.KeyVersions](t, rec)
	if v.KeyID != k.ID || v.CurrentVersion != 2 || len(v.Versions) != 2 || v.Versions[1].Number != 2 ||
		v.Versions[0].State != "enabled" || v.Versions[0].CreatedAt.IsZero() {
		t.Errorf("got %+v", v)
	}
	for _, vs := range fields(t, rec.Body.Bytes()) {
		if bytes.Contains(vs, []byte("wrapped")) || bytes.Contains(vs, []byte("rek")) {
			t.Errorf("versions leak material: %s", rec.Body)
		}
	}
	apiError(t, e.do(t, "GET", "/v1/keys/nope/versions", ""), http.StatusNotFound)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAPI_EncryptDecrypt(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64("hello")+`","encryption_context":{"app":"x"}}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("encrypt: got %d %s", rec.Code, rec.Body)
	}
	enc := decode[wire.EncryptResponse](t, rec)
	if enc.KeyID != k.ID || enc.KeyVersion != 1 || len(enc.Ciphertext) == 0 {
		t.Fatalf("encrypt: got %+v", enc)
	}
	ct := base64.StdEncoding.EncodeToString(enc.Ciphertext)
	for _, path := range []string{"/v1/decrypt", "/v1/keys/" + k.ID + "/decrypt"} {
		rec = e.do(t, "POST", path, `{"ciphertext":"`+ct+`","encryption_context":{"app":"x"}}`)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", path, rec.Code, rec.Body)
		}
		dec := decode[wire.DecryptResponse](t, rec)
		if string(dec.Plaintext) != "hello" || dec.KeyID != k.ID || dec.KeyVersion != 1 {
			t.Errorf("%s: got %+v", path, dec)
		}
	}
	if p := e.keys.LastCall().Params.(keys.DecryptParams); p.KeyID != k.ID || p.Context.Map["app"] != "x" {
		t.Errorf("decrypt params: got %+v", p)
	}
	body := apiError(t, e.do(t, "POST", "/v1/decrypt", `{"ciphertext":"`+ct+`","encryption_context":{"app":"y"}}`), http.StatusUnprocessableEntity)
	if body.Code != wire.CodeDecryptFailed || body.Message != "decryption failed" {
		t.Errorf("wrong context: got %+v", body)
	}
	other := e.createKey(t, "other")
	apiError(t, e.do(t, "POST", "/v1/keys/"+other.ID+"/decrypt", `{"ciphertext":"`+ct+`","encryption_context":{"app":"x"}}`), http.StatusUnprocessableEntity)

	rec = e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64("ad")+`","associated_data":"`+b64("aad")+`"}`)
	if p := e.keys.LastCall().Params.(keys.EncryptParams); string(p.Context.AssociatedData) != "aad" || string(p.Plaintext) != "ad" {
		t.Errorf("encrypt params: got %+v", p)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("encrypt with associated data: got %d %s", rec.Code, rec.Body)
	}
}

func TestAPI_EncryptPayloadLimit(t *testing.T) {
	e := newEnv(t, func(c *apiConfig) { c.MaxPayload = 16 })
	k := e.createKey(t, "k")
	rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64("0123456789abcdef")+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("16 bytes: got %d %s, want 200", rec.Code, rec.Body)
	}
	body := apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64("0123456789abcdefg")+`"}`), http.StatusRequestEntityTooLarge)
	if body.Code != wire.CodePayloadTooLarge {
		t.Errorf("code: got %q", body.Code)
	}
}

func TestAPI_GenerateDataKey(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/generate-data-key", `{}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	dk := decode[wire.GenerateDataKeyResponse](t, rec)
	if len(dk.Plaintext) != 32 || len(dk.Ciphertext) == 0 || dk.KeyID != k.ID {
		t.Errorf("got %+v", dk)
	}
	dec := decode[wire.DecryptResponse](t, e.do(t, "POST", "/v1/decrypt", `{"ciphertext":"`+base64.StdEncoding.EncodeToString(dk.Ciphertext)+`"}`))
	if !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Error("data key does not decrypt to its plaintext")
	}

	rec = e.do(t, "POST", "/v1/keys/"+k.ID+"/generate-data-key", `{"key_size":128,"without_plaintext":true}`)
	if _, ok := fields(t, rec.Body.Bytes())["plaintext"]; ok {
		t.Errorf("without_plaintext: body has plaintext: %s", rec.Body)
	}
	if p := e.keys.LastCall().Params.(keys.DataKeyParams); p.KeySizeBits != 128 || !p.WithoutPlaintext {
		t.Errorf("params: got %+v", p)
	}
	apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/generate-data-key", `{"key_size":512}`), http.StatusBadRequest)
}

func TestAPI_ReEncrypt(t *testing.T) {
	e := newEnv(t)
	src := e.createKey(t, "src")
	dst := e.createKey(t, "dst")
	enc := decode[wire.EncryptResponse](t, e.do(t, "POST", "/v1/keys/"+src.ID+"/encrypt", `{"plaintext":"`+b64("pt")+`","encryption_context":{"a":"1"}}`))
	ct := base64.StdEncoding.EncodeToString(enc.Ciphertext)

	for _, path := range []string{"/v1/re-encrypt", "/v1/keys/" + src.ID + "/re-encrypt"} {
		rec := e.do(t, "POST", path, `{"ciphertext":"`+ct+`","encryption_context":{"a":"1"},
			"destination_key_id":"`+dst.ID+`","destination_encryption_context":{"b":"2"}}`)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", path, rec.Code, rec.Body)
		}
		re := decode[wire.ReEncryptResponse](t, rec)
		if re.KeyID != dst.ID {
			t.Errorf("%s: key id got %s, want %s", path, re.KeyID, dst.ID)
		}
		dec := decode[wire.DecryptResponse](t, e.do(t, "POST", "/v1/decrypt",
			`{"ciphertext":"`+base64.StdEncoding.EncodeToString(re.Ciphertext)+`","encryption_context":{"b":"2"}}`))
		if string(dec.Plaintext) != "pt" {
			t.Errorf("%s: round trip got %q", path, dec.Plaintext)
		}
	}
	if p := e.keys.LastCall().Params.(keys.DecryptParams); p.KeyID != "" {
		t.Errorf("decrypt params: %+v", p)
	}
	rec := e.do(t, "POST", "/v1/keys/"+dst.ID+"/re-encrypt", `{"ciphertext":"`+ct+`","encryption_context":{"a":"1"}}`)
	apiError(t, rec, http.StatusUnprocessableEntity)
}

func TestAPI_ClusterStatus(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "GET", "/v1/cluster/status", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	st := decode[wire.ClusterStatus](t, rec)
	if st.Zone != "zone-a" || st.Leader != "node-1" || len(st.Nodes) != 3 || st.Nodes[1].RaftAddress != "127.0.0.1:8302" || st.AppliedIndex != 42 {
		t.Errorf("got %+v", st)
	}
	want := []string{"applied_index", "commit_index", "leader", "node_id", "nodes", "term", "zone"}
	if got := sortedKeys(fields(t, rec.Body.Bytes())); !slices.Equal(got, want) {
		t.Errorf("fields: got %v, want %v", got, want)
	}
}

func TestAPI_Health(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "GET", "/v1/health", "", "Authorization", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("ready: got %d %s", rec.Code, rec.Body)
	}
	if h := decode[wire.Health](t, rec); !h.Ready || !h.Live {
		t.Errorf("got %+v", h)
	}
	e.cluster.HealthResult.Ready = false
	e.cluster.HealthResult.Reason = "no known leader"
	rec = e.do(t, "GET", "/v1/health", "", "Authorization", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("not ready: got %d, want 503", rec.Code)
	}
	if h := decode[wire.Health](t, rec); h.Ready || h.Reason != "no known leader" {
		t.Errorf("got %+v", h)
	}
}

func TestAPI_Internal(t *testing.T) {
	var gotPath string
	internal := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		w.WriteHeader(http.StatusTeapot)
	})
	e := newEnv(t, func(c *apiConfig) { c.Internal = internal })
	if rec := e.do(t, "POST", "/v1/internal/propose", "{}"); rec.Code != http.StatusTeapot || gotPath != "/v1/internal/propose" {
		t.Errorf("got %d at %q, want 418 at /v1/internal/propose", rec.Code, gotPath)
	}
	// The API's tokens are not checked here: the internal handler checks
	// the nodes' own peer token.
	if rec := e.do(t, "GET", "/v1/internal/read-index", "", "Authorization", "Bearer wrong"); rec.Code != http.StatusTeapot {
		t.Errorf("internal route behind the API's tokens: got %d, want the handler's 418", rec.Code)
	}

	e = newEnv(t)
	apiError(t, e.do(t, "POST", "/v1/internal/propose", "{}"), http.StatusNotFound)
}
