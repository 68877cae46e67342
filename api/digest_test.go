package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
)

func TestAPI_ClusterDigest(t *testing.T) {
	e := newEnv(t)
	rec := e.asOperator(t, "GET", "/v1/cluster/digest", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s, want 200", rec.Code, rec.Body)
	}
	got := decode[wire.DigestReport](t, rec)
	want := e.cluster.DigestResult
	if got.Zone != want.Zone || got.Node != want.Node || got.ChangeSeq != want.ChangeSeq || len(got.Keys) != len(want.Keys) {
		t.Fatalf("report: got %+v, want %+v", got, want)
	}
	for i, d := range want.Keys {
		w := wire.KeyDigest{KeyID: d.KeyID, PrimaryZone: d.PrimaryZone, ReplicaZones: d.ReplicaZones, Digest: d.Digest, ReplicaSeq: d.ReplicaSeq}
		if !equalDigest(got.Keys[i], w) {
			t.Errorf("key %d: got %+v, want %+v", i, got.Keys[i], w)
		}
	}
	if got := sortedKeys(fields(t, rec.Body.Bytes())); !slices.Equal(got, []string{"change_seq", "keys", "node", "zone"}) {
		t.Errorf("fields: got %v", got)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(raw.Keys[0])); !slices.Equal(got, []string{"digest", "key_id", "primary_zone", "replica_seq", "replica_zones"}) {
		t.Errorf("key fields: got %v", got)
	}
}

func equalDigest(a, b wire.KeyDigest) bool {
	return a.KeyID == b.KeyID && a.PrimaryZone == b.PrimaryZone && slices.Equal(a.ReplicaZones, b.ReplicaZones) &&
		a.Digest == b.Digest && a.ReplicaSeq == b.ReplicaSeq
}

// TestAPI_ClusterDigest_Empty: no multi-zone key, or a digest with no
// replica zones, still sends lists, never null.
func TestAPI_ClusterDigest_Empty(t *testing.T) {
	e := newEnv(t)
	e.cluster.DigestResult = cluster.DigestReport{Zone: "zone-a", Node: "node-1"}
	rec := e.asOperator(t, "GET", "/v1/cluster/digest", "")
	if got := string(fields(t, rec.Body.Bytes())["keys"]); got != "[]" {
		t.Errorf("no keys: got %s, want []", got)
	}
	e.cluster.DigestResult.Keys = []fsm.KeyDigest{{KeyID: "k", PrimaryZone: "zone-b", Digest: "d"}}
	rec = e.asOperator(t, "GET", "/v1/cluster/digest", "")
	var raw struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if got := string(raw.Keys[0]["replica_zones"]); got != "[]" {
		t.Errorf("replica_zones: got %s, want []", got)
	}
}

func TestAPI_ClusterDigest_Errors(t *testing.T) {
	e := newEnv(t)
	apiError(t, e.do(t, "GET", "/v1/cluster/digest", "", "Authorization", ""), http.StatusUnauthorized)
	apiError(t, e.do(t, "GET", "/v1/cluster/digest", "", "Authorization", "Bearer wrong"), http.StatusUnauthorized)
	apiError(t, e.asOperator(t, "POST", "/v1/cluster/digest", "{}"), http.StatusMethodNotAllowed)
	// The digest is the operator's: an organization's token, even an
	// org-admin's, is refused.
	if b := apiError(t, e.do(t, "GET", "/v1/cluster/digest", ""), http.StatusForbidden); b.Code != wire.CodeForbidden {
		t.Errorf("org-admin: got %+v, want %s", b, wire.CodeForbidden)
	}

	// A zone without a leader can't answer a consistent read: retryable.
	e.cluster.DigestErr = fmt.Errorf("read index: %w", cluster.ErrNoLeader)
	rec := e.asOperator(t, "GET", "/v1/cluster/digest", "")
	if body := apiError(t, rec, http.StatusServiceUnavailable); body.Code != wire.CodeUnavailable {
		t.Errorf("no leader: code %q, want %q", body.Code, wire.CodeUnavailable)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no leader: no Retry-After")
	}
}
