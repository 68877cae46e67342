package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
)

func TestAPI_ClusterPeers(t *testing.T) {
	e := newEnv(t)
	rec := e.asOperator(t, "GET", "/v1/cluster/peers", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s, want 200", rec.Code, rec.Body)
	}
	ps := decode[wire.PeersResponse](t, rec).Peers
	if len(ps) != 3 {
		t.Fatalf("peers: got %+v, want 3", ps)
	}
	if p := ps[1]; p.ID != "node-2" || p.State != "follower" || p.LastContact != "12ms" || p.AppliedIndex == nil || *p.AppliedIndex != 42 ||
		p.RaftAddress != "127.0.0.1:8302" || p.APIAddress != "http://127.0.0.1:8202" {
		t.Errorf("node-2: got %+v", p)
	}
	if p := ps[2]; p.State != "unreachable" || p.LastContact != "" || p.AppliedIndex != nil {
		t.Errorf("node-3: got %+v", p)
	}
	// Unknown values are present, as "" and null.
	raw := decode[struct{ Peers []map[string]json.RawMessage }](t, rec).Peers
	if got := string(raw[2]["applied_index"]); got != "null" {
		t.Errorf("applied_index of node-3: got %s, want null", got)
	}

	rec = e.do(t, "GET", "/v1/cluster/peers", "", "Authorization", "")
	apiError(t, rec, http.StatusUnauthorized)
	// Peers are the operator's: an org-admin's token is refused.
	if b := apiError(t, e.do(t, "GET", "/v1/cluster/peers", ""), http.StatusForbidden); b.Code != wire.CodeForbidden {
		t.Errorf("org-admin: got %+v, want %s", b, wire.CodeForbidden)
	}
	e.cluster.PeersErr = cluster.ErrNoLeader
	if b := apiError(t, e.asOperator(t, "GET", "/v1/cluster/peers", ""), http.StatusServiceUnavailable); b.Code != wire.CodeUnavailable {
		t.Errorf("no leader: got %+v", b)
	}
}

func TestAPI_RemovePeer(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		id     string
		status int
		code   string
	}{
		{id: "no-such-node", status: http.StatusNotFound, code: wire.CodePeerNotFound},
		{id: "node-1", status: http.StatusConflict, code: wire.CodePeerIsLeader},
	} {
		if b := apiError(t, e.asOperator(t, "DELETE", "/v1/cluster/peers/"+tc.id, ""), tc.status); b.Code != tc.code {
			t.Errorf("remove %s: got %+v, want %s", tc.id, b, tc.code)
		}
	}
	if b := apiError(t, e.do(t, "DELETE", "/v1/cluster/peers/node-3", ""), http.StatusForbidden); b.Code != wire.CodeForbidden {
		t.Errorf("remove as org-admin: got %+v, want %s", b, wire.CodeForbidden)
	}
	if rec := e.asOperator(t, "DELETE", "/v1/cluster/peers/node-3", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("remove node-3: got %d %s, want 204", rec.Code, rec.Body)
	}
	var ids []string
	for _, p := range e.cluster.PeersSnapshot() {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{"node-1", "node-2"}) {
		t.Errorf("peers after removal: got %v", ids)
	}
	e.cluster.RemoveErr = cluster.ErrLastVoter
	if b := apiError(t, e.asOperator(t, "DELETE", "/v1/cluster/peers/node-2", ""), http.StatusConflict); b.Code != wire.CodeLastVoter {
		t.Errorf("last voter: got %+v", b)
	}
	e.cluster.RemoveErr = cluster.ErrNoLeader
	rec := e.asOperator(t, "DELETE", "/v1/cluster/peers/node-2", "")
	if b := apiError(t, rec, http.StatusServiceUnavailable); b.Code != wire.CodeUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("no leader: got %+v, Retry-After %q", b, rec.Header().Get("Retry-After"))
	}
}

func TestAPI_TransferLeadership(t *testing.T) {
	e := newEnv(t)
	if rec := e.asOperator(t, "POST", "/v1/cluster/transfer-leadership", `{"node_id":"node-2"}`); rec.Code != http.StatusNoContent {
		t.Fatalf("transfer: got %d %s, want 204", rec.Code, rec.Body)
	}
	if rec := e.asOperator(t, "POST", "/v1/cluster/transfer-leadership", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("transfer to any: got %d %s, want 204", rec.Code, rec.Body)
	}
	if b := apiError(t, e.do(t, "POST", "/v1/cluster/transfer-leadership", `{"node_id":"node-3"}`), http.StatusForbidden); b.Code != wire.CodeForbidden {
		t.Errorf("transfer as org-admin: got %+v, want %s", b, wire.CodeForbidden)
	}
	if got := e.cluster.Transfers(); !slices.Equal(got, []string{"node-2", ""}) {
		t.Errorf("transfers: got %q", got)
	}
	if b := apiError(t, e.asOperator(t, "POST", "/v1/cluster/transfer-leadership", `{"node_id":"nope"}`), http.StatusNotFound); b.Code != wire.CodePeerNotFound {
		t.Errorf("unknown: got %+v", b)
	}
	if b := apiError(t, e.asOperator(t, "POST", "/v1/cluster/transfer-leadership", `{"node":"x"}`), http.StatusBadRequest); b.Code != wire.CodeInvalidArgument {
		t.Errorf("unknown field: got %+v", b)
	}
	e.cluster.TransferErr = cluster.ErrTransferFailed
	if b := apiError(t, e.asOperator(t, "POST", "/v1/cluster/transfer-leadership", `{}`), http.StatusServiceUnavailable); b.Code != wire.CodeUnavailable {
		t.Errorf("failed transfer: got %+v", b)
	}
}
