package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// token is an org-admin token of the fake's organization "default";
// operatorToken the cluster operator's.
const (
	token         = "client-test-token"
	operatorToken = "client-test-operator-token"
)

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type env struct {
	keys    *apitest.Keys
	cluster *apitest.Cluster
	tenants *apitest.Tenants
	srv     *httptest.Server
	c       *client.Client // an org-admin's
	op      *client.Client // the operator's
	conns   atomic.Int32
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{keys: apitest.NewKeys(), cluster: apitest.NewCluster(), tenants: apitest.NewTenants()}
	e.tenants.AddToken(token, fsm.DefaultOrganization, fsm.RoleOrgAdmin)
	h, err := api.NewRouter(api.Config{
		Keys: e.keys, Cluster: e.cluster, Tenants: e.tenants, OperatorToken: operatorToken,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: tWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(h)
	e.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	if e.c, err = client.New(e.srv.URL, token); err != nil {
		t.Fatal(err)
	}
	if e.op, err = client.New(e.srv.URL, operatorToken); err != nil {
		t.Fatal(err)
	}
	return e
}

func apiErr(t *testing.T, err error, status int, code string) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err: got %v (%T), want *client.Error", err, err)
	}
	if ce.StatusCode != status || ce.Code != code {
		t.Fatalf("err: got %d %s, want %d %s", ce.StatusCode, ce.Code, status, code)
	}
	return ce
}

func TestNew(t *testing.T) {
	for _, addr := range []string{"", "ftp://x", "http://", "http://[::1"} {
		if _, err := client.New(addr, "t"); err == nil {
			t.Errorf("New(%q): got nil error", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:1", "http://h:1/", "https://h"} {
		if _, err := client.New(addr, "t"); err != nil {
			t.Errorf("New(%q): %v", addr, err)
		}
	}
}

func TestClient_KeyLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	k, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{
		Name: "orders", Tags: []string{"a"}, RotationPolicy: wire.RotationPolicySpec{RotationPeriod: "720h"},
	}, client.IdempotencyKey("create-orders"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "orders" || k.State != "enabled" || k.RotationPolicy.RotationPeriod != "720h0m0s" || k.CreatedAt.IsZero() {
		t.Errorf("created: got %+v", k)
	}
	again, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: "orders"}, client.IdempotencyKey("create-orders"))
	if err != nil || again.ID != k.ID {
		t.Errorf("idempotent repeat: got %s, %v; want %s", again.ID, err, k.ID)
	}
	_, err = e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: "orders"})
	apiErr(t, err, 409, wire.CodeKeyExists)

	got, err := e.c.GetKey(ctx, k.ID, client.Stale())
	if err != nil || got.ID != k.ID {
		t.Fatalf("get: got %+v, %v", got, err)
	}
	if c := e.keys.LastCall().Params.(apitest.GetKeyCall); !c.Stale {
		t.Errorf("Stale: got %+v", c)
	}

	desc := "new description"
	tags := []string{"x", "y"}
	up, err := e.c.UpdateKey(ctx, k.ID, wire.UpdateKeyRequest{Description: &desc, Tags: &tags}, client.IfMatch(k.Revision))
	if err != nil || up.Description != desc || !slices.Equal(up.Tags, tags) || up.Name != "orders" {
		t.Fatalf("update: got %+v, %v", up, err)
	}
	_, err = e.c.DisableKey(ctx, k.ID, client.IfMatch(k.Revision))
	apiErr(t, err, 412, wire.CodeRevisionMismatch)

	steps := []struct {
		name  string
		call  func() (wire.Key, error)
		state string
	}{
		{"disable", func() (wire.Key, error) { return e.c.DisableKey(ctx, k.ID, client.IfMatch(up.Revision)) }, "disabled"},
		{"enable", func() (wire.Key, error) { return e.c.EnableKey(ctx, k.ID) }, "enabled"},
		{"protect", func() (wire.Key, error) { return e.c.ProtectKey(ctx, k.ID) }, "enabled"},
		{"unprotect", func() (wire.Key, error) { return e.c.UnprotectKey(ctx, k.ID) }, "enabled"},
		{"rotate", func() (wire.Key, error) { return e.c.RotateKey(ctx, k.ID, client.IdempotencyKey("rot-1")) }, "enabled"},
		{"schedule", func() (wire.Key, error) { return e.c.ScheduleDeletion(ctx, k.ID, 48*time.Hour) }, "pending_deletion"},
		{"cancel", func() (wire.Key, error) { return e.c.CancelDeletion(ctx, k.ID) }, "disabled"},
		{"schedule default", func() (wire.Key, error) { return e.c.ScheduleDeletion(ctx, k.ID, 0) }, "pending_deletion"},
	}
	for _, s := range steps {
		got, err := s.call()
		if err != nil || got.State != s.state {
			t.Fatalf("%s: got %s, %v; want %s", s.name, got.State, err, s.state)
		}
	}
	if p := e.keys.LastCall().Params.(keys.ScheduleDeletionParams); p.PendingWindow != 0 {
		t.Errorf("default window: got %v", p.PendingWindow)
	}

	v, err := e.c.KeyVersions(ctx, k.ID)
	if err != nil || v.CurrentVersion != 2 || len(v.Versions) != 2 {
		t.Errorf("versions: got %+v, %v", v, err)
	}

	_, err = e.c.GetKey(ctx, "missing")
	ce := apiErr(t, err, 404, wire.CodeKeyNotFound)
	if want := "keyzone: 404 key_not_found: key missing: fsm: key not found"; ce.Error() != want {
		t.Errorf("Error(): got %q, want %q", ce.Error(), want)
	}
	if _, err := e.c.EnableKey(ctx, ""); err == nil || !strings.Contains(err.Error(), "empty key id") {
		t.Errorf("empty id: got %v", err)
	}
}

func TestClient_ListKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: n, Tags: []string{"t-" + n}}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := client.ListKeysOptions{PageSize: 2}
	for {
		page, err := e.c.ListKeys(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Keys {
			names = append(names, k.Name)
		}
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("paged names: got %v", names)
	}
	page, err := e.c.ListKeys(ctx, client.ListKeysOptions{Tag: "t-b", State: "enabled", Name: "b", Stale: true})
	if err != nil || len(page.Keys) != 1 || page.Keys[0].Name != "b" {
		t.Fatalf("filtered: got %+v, %v", page, err)
	}
	p := e.keys.LastCall().Params.(keys.ListParams)
	if p.Tag != "t-b" || p.State != fsm.KeyStateEnabled || p.Name != "b" || !p.Stale {
		t.Errorf("params: got %+v", p)
	}
}

func TestClient_Crypto(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"tenant": "42"}
	enc, err := e.c.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("attack at dawn"), EncryptionContext: ec})
	if err != nil || enc.KeyID != k.ID || enc.KeyVersion != 1 {
		t.Fatalf("encrypt: got %+v, %v", enc, err)
	}
	dec, err := e.c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: ec})
	if err != nil || string(dec.Plaintext) != "attack at dawn" {
		t.Fatalf("decrypt: got %+v, %v", dec, err)
	}
	if _, err := e.c.DecryptWithKey(ctx, k.ID, wire.DecryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: ec}); err != nil {
		t.Errorf("decrypt with key: %v", err)
	}
	_, err = e.c.DecryptWithKey(ctx, other.ID, wire.DecryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: ec})
	if ce := apiErr(t, err, 422, wire.CodeDecryptFailed); ce.Message != "decryption failed" {
		t.Errorf("message: got %q", ce.Message)
	}
	_, err = e.c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
	apiErr(t, err, 422, wire.CodeDecryptFailed)

	dk, err := e.c.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{KeySize: 128, AssociatedData: []byte("ad")})
	if err != nil || len(dk.Plaintext) != 16 {
		t.Fatalf("data key: got %+v, %v", dk, err)
	}
	dkp, err := e.c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: dk.Ciphertext, AssociatedData: []byte("ad")})
	if err != nil || !bytes.Equal(dkp.Plaintext, dk.Plaintext) {
		t.Errorf("data key round trip: %v", err)
	}
	dk, err = e.c.GenerateDataKey(ctx, k.ID, wire.GenerateDataKeyRequest{WithoutPlaintext: true})
	if err != nil || dk.Plaintext != nil || len(dk.Ciphertext) == 0 {
		t.Errorf("without plaintext: got %+v, %v", dk, err)
	}

	re, err := e.c.ReEncrypt(ctx, wire.ReEncryptRequest{Ciphertext: enc.Ciphertext, EncryptionContext: ec, DestinationKeyID: other.ID})
	if err != nil || re.KeyID != other.ID {
		t.Fatalf("re-encrypt: got %+v, %v", re, err)
	}
	re2, err := e.c.ReEncryptWithKey(ctx, other.ID, wire.ReEncryptRequest{Ciphertext: re.Ciphertext, DestinationEncryptionContext: ec})
	if err != nil || re2.KeyID != other.ID {
		t.Fatalf("re-encrypt with key: got %+v, %v", re2, err)
	}
	dec, err = e.c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: re2.Ciphertext, EncryptionContext: ec})
	if err != nil || string(dec.Plaintext) != "attack at dawn" {
		t.Errorf("after re-encrypts: got %+v, %v", dec, err)
	}

	if _, err := e.c.DisableKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
	apiErr(t, err, 409, wire.CodeKeyDisabled)
	_, err = e.c.Encrypt(ctx, other.ID, wire.EncryptRequest{Plaintext: make([]byte, api.DefaultMaxPayload+1)})
	apiErr(t, err, 413, wire.CodePayloadTooLarge)
}

func TestClient_ClusterAndHealth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := e.c.ClusterStatus(ctx)
	if err != nil || st.Leader != "node-1" || len(st.Nodes) != 3 {
		t.Fatalf("status: got %+v, %v", st, err)
	}
	noToken, err := client.New(e.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := noToken.Health(ctx)
	if err != nil || !h.Ready {
		t.Fatalf("health: got %+v, %v", h, err)
	}
	e.cluster.HealthResult = cluster.Health{Live: true, Reason: "no known leader"}
	h, err = noToken.Health(ctx)
	if err != nil || h.Ready || h.Reason != "no known leader" {
		t.Errorf("not ready: got %+v, %v", h, err)
	}
	_, err = noToken.ClusterStatus(ctx)
	apiErr(t, err, 401, wire.CodeUnauthorized)

	e.cluster.StatusErr = errors.New("cluster: no leader wrapped") // not the sentinel: internal
	_, err = e.c.ClusterStatus(ctx)
	if ce := apiErr(t, err, 500, wire.CodeInternal); ce.Message != "internal error" {
		t.Errorf("message: got %q", ce.Message)
	}
}

func TestClient_RetryAfterAndForeignErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/keys/busy":
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"no raft leader, retry later"}}`))
		case "/v1/health":
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`<html>bad gateway</html>`))
		default:
			w.WriteHeader(502)
			_, _ = w.Write([]byte("upstream down"))
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "t")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.GetKey(ctx, "busy")
	if ce := apiErr(t, err, 503, wire.CodeUnavailable); ce.RetryAfter != time.Second {
		t.Errorf("RetryAfter: got %v", ce.RetryAfter)
	}
	_, err = c.Health(ctx)
	apiErr(t, err, 503, "")
	_, err = c.GetKey(ctx, "x")
	if ce := apiErr(t, err, 502, ""); ce.Error() != "keyzone: 502: upstream down" {
		t.Errorf("Error(): got %q", ce.Error())
	}
}

func TestClient_TimeoutAndHTTPClient(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	var sent atomic.Int32
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err := client.New(srv.URL, "t", client.WithHTTPClient(hc), client.WithTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.GetKey(context.Background(), "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err: got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
	if sent.Load() != 1 {
		t.Errorf("custom HTTP client: got %d requests, want 1", sent.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClient_KeepAlive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := e.c.GetKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		_, _ = e.c.GetKey(ctx, "missing") // error answers keep the connection too
	}
	if n := e.conns.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1", n)
	}
}

func TestClient_Replicas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k, err := e.c.CreateKey(ctx, wire.CreateKeyRequest{Name: "mz", ReplicaZones: []string{"zone-c"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.ReplicaZones, []string{"zone-c"}) {
		t.Errorf("create: replica zones got %v", k.ReplicaZones)
	}
	if p := e.keys.LastCall().Params.(keys.CreateParams); !slices.Equal(p.ReplicaZones, []string{"zone-c"}) {
		t.Errorf("create params: got %+v", p)
	}

	added, err := e.c.AddReplica(ctx, k.ID, "zone-b", client.IfMatch(k.Revision))
	if err != nil || !slices.Equal(added.ReplicaZones, []string{"zone-b", "zone-c"}) || added.Revision <= k.Revision {
		t.Fatalf("add: got %+v, %v", added, err)
	}
	c := e.keys.LastCall()
	if p := c.Params.(apitest.ReplicaCall); c.Method != "AddReplica" || p.Zone != "zone-b" || p.Ref.KeyID != k.ID || p.Ref.IfRevision != k.Revision {
		t.Errorf("add call: got %+v", c)
	}
	_, err = e.c.AddReplica(ctx, k.ID, "zone-d", client.IfMatch(k.Revision))
	apiErr(t, err, 412, wire.CodeRevisionMismatch)

	removed, err := e.c.RemoveReplica(ctx, k.ID, "zone-c", client.IfMatch(added.Revision))
	if err != nil || !slices.Equal(removed.ReplicaZones, []string{"zone-b"}) {
		t.Fatalf("remove: got %+v, %v", removed, err)
	}
	c = e.keys.LastCall()
	if p := c.Params.(apitest.ReplicaCall); c.Method != "RemoveReplica" || p.Zone != "zone-c" || p.Ref.IfRevision != added.Revision {
		t.Errorf("remove call: got %+v", c)
	}
	_, err = e.c.RemoveReplica(ctx, k.ID, "zone-b", client.IfMatch(added.Revision))
	apiErr(t, err, 412, wire.CodeRevisionMismatch)

	// Zone names are checked by the server; the client only refuses what
	// can't be a path segment.
	before := len(e.keys.Calls())
	for _, z := range []string{"", ".", "..", "zone/b", "../zone-b"} {
		if _, err := e.c.RemoveReplica(ctx, k.ID, z); err == nil || !strings.Contains(err.Error(), "invalid zone name") {
			t.Errorf("RemoveReplica(%q): got %v", z, err)
		}
	}
	if len(e.keys.Calls()) != before {
		t.Error("invalid zones reached the server")
	}
	_, err = e.c.RemoveReplica(ctx, k.ID, "zone b")
	apiErr(t, err, 400, wire.CodeInvalidArgument)
	_, err = e.c.RemoveReplica(ctx, k.ID, strings.Repeat("z", 1024))
	apiErr(t, err, 400, wire.CodeInvalidArgument)
	_, err = e.c.AddReplica(ctx, k.ID, "")
	apiErr(t, err, 400, wire.CodeInvalidArgument)
	if _, err := e.c.AddReplica(ctx, "", "zone-b"); err == nil || !strings.Contains(err.Error(), "empty key id") {
		t.Errorf("empty id: got %v", err)
	}

	replica := e.keys.Put(fsm.Key{ID: "00000000-0000-4000-8000-000000000999", Organization: fsm.DefaultOrganization,
		Name: "r", State: fsm.KeyStateEnabled, PrimaryZone: "zone-b", ReplicaZones: []string{"zone-a"}, Revision: 3, ReplicaSeq: 8})
	_, err = e.c.AddReplica(ctx, replica.ID, "zone-c")
	if ce := apiErr(t, err, 409, wire.CodeNotPrimary); !strings.Contains(ce.Message, "primary zone zone-b") {
		t.Errorf("not primary message: got %q", ce.Message)
	}
	got, err := e.c.GetKey(ctx, replica.ID)
	if err != nil || got.ReplicaSeq != 8 {
		t.Errorf("replica: got %+v, %v", got, err)
	}

	e.keys.Fail = func(m string) error {
		if m == "RemoveReplica" {
			return fmt.Errorf("changes: %w", fsm.ErrChangeGap)
		}
		return nil
	}
	_, err = e.c.RemoveReplica(ctx, k.ID, "zone-b")
	if ce := apiErr(t, err, 503, wire.CodeUnavailable); ce.RetryAfter != time.Second {
		t.Errorf("change gap: RetryAfter got %v", ce.RetryAfter)
	}
	e.keys.Fail = func(m string) error {
		return fmt.Errorf("rotate key %s: waiting for zones zone-b: %w", k.ID, fsm.ErrRotationPending)
	}
	_, err = e.c.RotateKey(ctx, k.ID)
	if ce := apiErr(t, err, 409, wire.CodeRotationPending); !strings.Contains(ce.Message, "zone-b") {
		t.Errorf("rotation pending message: got %q", ce.Message)
	}
}

func TestClient_Zones(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	zs, err := e.c.Zones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(zs.Zones) != 3 || zs.Zones[0].Name != "zone-a" || !zs.Zones[0].Local || zs.Zones[0].ChangeSeq != 12 ||
		len(zs.Zones[0].Nodes) != 3 || zs.Zones[1].Acked != 10 || zs.Zones[1].LagEntries != 2 || zs.Zones[1].Nodes[1].ID != "node-b2" {
		t.Errorf("zones: got %+v", zs)
	}
	e.cluster.ZonesErr = errors.New("memberlist: exploded")
	_, err = e.c.Zones(ctx)
	apiErr(t, err, 500, wire.CodeInternal)
	noToken, err := client.New(e.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = noToken.Zones(ctx)
	apiErr(t, err, 401, wire.CodeUnauthorized)
}

func TestClient_Peers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ps, err := e.op.Peers(ctx)
	if err != nil || len(ps.Peers) != 3 || ps.Peers[0].State != "leader" || ps.Peers[2].AppliedIndex != nil {
		t.Fatalf("peers: got %+v, %v", ps, err)
	}
	apiErr(t, e.op.RemovePeer(ctx, "nope"), 404, wire.CodePeerNotFound)
	apiErr(t, e.op.RemovePeer(ctx, "node-1"), 409, wire.CodePeerIsLeader)
	if err := e.op.RemovePeer(ctx, ""); err == nil {
		t.Error("remove empty id: got nil error")
	}
	if err := e.op.RemovePeer(ctx, "node-3"); err != nil {
		t.Fatalf("remove node-3: %v", err)
	}
	if err := e.op.TransferLeadership(ctx, "node-2"); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	ps, err = e.op.Peers(ctx)
	if err != nil || len(ps.Peers) != 2 || ps.Peers[1].State != "leader" {
		t.Errorf("peers after: got %+v, %v", ps, err)
	}
	e.cluster.TransferErr = cluster.ErrNoLeader
	if ce := apiErr(t, e.op.TransferLeadership(ctx, ""), 503, wire.CodeUnavailable); ce.RetryAfter != time.Second {
		t.Errorf("RetryAfter: got %v", ce.RetryAfter)
	}
}
