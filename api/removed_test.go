package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/fsm"
)

// TestRemovedNode_ServesNoKeys: once the node knows it was removed from
// its zone, key reads and crypto answer 503 saying so, while health and
// the cluster routes still answer for the operator.
func TestRemovedNode_ServesNoKeys(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "before")
	e.cluster.RemovedResult = &fsm.RemovedNode{NodeID: "node-3", Zone: "zone-a", RemovedAt: 1}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/keys/" + k.ID, ""},
		{http.MethodGet, "/v1/keys", ""},
		{http.MethodPost, "/v1/keys/" + k.ID + "/encrypt", `{"plaintext":"aGk="}`},
		{http.MethodPost, "/v1/decrypt", `{"ciphertext":"aGk="}`},
	} {
		rec := e.do(t, r.method, r.path, r.body)
		body := apiError(t, rec, http.StatusServiceUnavailable)
		if body.Code != "unavailable" || !strings.Contains(body.Message, "removed from its zone") {
			t.Errorf("%s %s: %+v", r.method, r.path, body)
		}
	}
	for _, path := range []string{"/v1/health/live", "/v1/cluster/peers"} {
		if rec := e.asOperator(t, http.MethodGet, path, ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s on a removed node: %d", path, rec.Code)
		}
	}
}
