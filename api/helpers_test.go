package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
)

// testToken is an org-admin token of the fake's organization "default";
// operatorToken is the cluster operator's.
const (
	testToken     = "s3cret-org-admin-token"
	operatorToken = "s3cret-operator-token"
)

type apiConfig = api.Config

// syncBuffer collects log output across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type testEnv struct {
	keys    *apitest.Keys
	cluster *apitest.Cluster
	tenants *apitest.Tenants
	handler http.Handler
	router  *api.Router
	logs    *syncBuffer // everything logged, at Trace and up
}

// flushAudit writes the audit records that wait for their batch.
func (e *testEnv) flushAudit() { e.router.FlushAudit() }

func newEnv(t *testing.T, opts ...func(*api.Config)) *testEnv {
	t.Helper()
	e := &testEnv{keys: apitest.NewKeys(), cluster: apitest.NewCluster(), tenants: apitest.NewTenants(), logs: &syncBuffer{}}
	e.tenants.AddToken(testToken, fsm.DefaultOrganization, fsm.RoleOrgAdmin)
	cfg := api.Config{
		Keys:          e.keys,
		Cluster:       e.cluster,
		Tenants:       e.tenants,
		OperatorToken: operatorToken,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "test",
			Level:  hclog.Trace,
			Output: io.MultiWriter(e.logs, tWriter{t}),
		}),
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := api.NewRouter(cfg)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	e.handler, e.router = h, h
	// Deferred audit records are written before the test ends, not by a
	// timer after it (which would log to a finished test).
	t.Cleanup(h.FlushAudit)
	return e
}

// do sends a request with the org-admin token unless headers set
// Authorization (an empty value sends none). headers are name, value pairs.
func (e *testEnv) do(t *testing.T, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		switch {
		case headers[i] == "Authorization" && headers[i+1] == "":
			req.Header.Del("Authorization")
		case headers[i] == "Authorization":
			req.Header.Set("Authorization", headers[i+1])
		default:
			req.Header.Add(headers[i], headers[i+1])
		}
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

// asOperator sends a request with the cluster operator's token.
func (e *testEnv) asOperator(t *testing.T, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, method, path, body, append([]string{"Authorization", "Bearer " + operatorToken}, headers...)...)
}

// createKey creates a key through the API and returns it.
func (e *testEnv) createKey(t *testing.T, name string) wire.Key {
	t.Helper()
	rec := e.do(t, "POST", "/v1/keys", `{"name":"`+name+`"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create key %s: got %d %s, want 201", name, rec.Code, rec.Body)
	}
	return decode[wire.Key](t, rec)
}

// decode parses a JSON response body into T, strictly.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type: got %q, want application/json", ct)
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, rec.Body, err)
	}
	return v
}

// apiError checks the status and returns the error body.
func apiError(t *testing.T, rec *httptest.ResponseRecorder, status int) wire.ErrorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status: got %d (%s), want %d", rec.Code, rec.Body, status)
	}
	return decode[wire.ErrorResponse](t, rec).Error
}

// fields returns the top-level JSON field names of the body.
func fields(t *testing.T, body []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return m
}
