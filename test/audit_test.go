package test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/server"
	"github.com/keyzone/keyzone/test/clustertest"
)

// readAudit parses an audit log file, one JSON object per line.
func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAudit_CallsOfARealZone sends calls to a follower of a real zone
// whose nodes write their audit logs to files, and reads the follower's
// JSON lines back: one per call, crypto and refused calls too, each
// naming who called (organization, token id, role; "operator" for the
// operator's token), the operation and the key and version it used, and
// never a token secret, a plaintext or a description.
func TestAudit_CallsOfARealZone(t *testing.T) {
	dir := t.TempDir()
	var (
		mu    sync.Mutex
		sinks []*audit.JSONSink
	)
	// Registered before the zone's own cleanup, so it runs after the
	// nodes have stopped writing.
	t.Cleanup(func() {
		for _, s := range sinks {
			s.Close()
		}
	})
	z := clustertest.New(t, 3, clustertest.Options{Zone: "audit-a", Server: func(c *server.Config) {
		s, err := audit.Open(filepath.Join(dir, c.Cluster.NodeID+".log"))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		sinks = append(sinks, s)
		mu.Unlock()
		c.Audit = s
	}})
	tokens := z.Nodes[0].Server().FSM().Tokens(z.Org.ID)
	if len(tokens) != 1 {
		t.Fatalf("the test organization has %d tokens, want the harness's one", len(tokens))
	}
	adminID := tokens[0].ID
	f := z.Followers()[0]
	// What the zone's start wrote (the organization, the harness's token
	// and its checks) comes before the test's calls.
	f.Server().FlushAudit()
	skip := len(readAudit(t, filepath.Join(dir, f.ID+".log")))
	ctx := testCtx(t, 60*time.Second)
	cl, err := client.New(f.Addr(), z.Token)
	if err != nil {
		t.Fatal(err)
	}
	op, err := client.New(f.Addr(), z.OperatorToken)
	if err != nil {
		t.Fatal(err)
	}
	k, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "audited", Description: "not for the audit log"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("plaintext-not-audited")}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Peers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := op.RemovePeer(ctx, "no-such-node"); err == nil {
		t.Fatal("remove an unknown peer: want an error")
	}
	// A rotation with the caller's request id, then a wrong token.
	req, _ := http.NewRequest("POST", f.Addr()+"/v1/keys/"+k.ID+"/rotate", nil)
	req.Header.Set("Authorization", "Bearer "+z.Token)
	req.Header.Set("X-Request-Id", "ops-ticket-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") != "ops-ticket-42" {
		t.Fatalf("rotate: got %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	wrong := "Bearer wrong-token-0123456789abcdef"
	req, _ = http.NewRequest("GET", f.Addr()+"/v1/cluster/status", nil)
	req.Header.Set("Authorization", wrong)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deniedID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusUnauthorized || deniedID == "" {
		t.Fatalf("wrong token: got %d, X-Request-Id %q", resp.StatusCode, deniedID)
	}

	// Reads' and crypto calls' records wait up to a millisecond for
	// their batch.
	f.Server().FlushAudit()
	lines := readAudit(t, filepath.Join(dir, f.ID+".log"))[skip:]
	org := z.Org.ID
	want := []struct {
		method, route, op, keyID, peerID, outcome string
		version                                   float64
		org, tokenID, role                        string
	}{
		{"POST", "/v1/keys", "create-key", k.ID, "", "success", 1, org, adminID, "org-admin"},
		{"POST", "/v1/keys/:id/encrypt", "encrypt", k.ID, "", "success", 1, org, adminID, "org-admin"},
		{"GET", "/v1/cluster/peers", "list-peers", "", "", "success", 0, "", "", "operator"},
		{"DELETE", "/v1/cluster/peers/:id", "remove-peer", "", "no-such-node", "refused", 0, "", "", "operator"},
		{"POST", "/v1/keys/:id/rotate", "rotate-key", k.ID, "", "success", 2, org, adminID, "org-admin"},
		{"GET", "/v1/cluster/status", "cluster-status", "", "", "denied", 0, "", "", ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d audit lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		str := func(k string) string { s, _ := l[k].(string); return s }
		ver, _ := l["key_version"].(float64)
		if str("method") != w.method || str("route") != w.route || str("operation") != w.op || str("key_id") != w.keyID ||
			str("peer_id") != w.peerID || str("outcome") != w.outcome || ver != w.version {
			t.Errorf("line %d: got %v, want %+v", i, l, w)
		}
		if str("organization") != w.org || str("token_id") != w.tokenID || str("role") != w.role {
			t.Errorf("line %d: caller %q %q %q, want %q %q %q", i, str("organization"), str("token_id"), str("role"), w.org, w.tokenID, w.role)
		}
		if str("node") != f.ID || str("zone") != "audit-a" || str("source") != "127.0.0.1" || str("request_id") == "" {
			t.Errorf("line %d: context: %v", i, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, str("time")); err != nil {
			t.Errorf("line %d: time: %v", i, err)
		}
		if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("line %d: duration_ms %v", i, l["duration_ms"])
		}
	}
	if lines[4]["request_id"] != "ops-ticket-42" || lines[5]["request_id"] != deniedID {
		t.Errorf("request ids: got %v and %v", lines[4]["request_id"], lines[5]["request_id"])
	}
	if lines[5]["status"] != 401.0 || lines[5]["code"] != "unauthorized" {
		t.Errorf("denied call: got %v", lines[5])
	}
	for _, n := range z.Nodes {
		b, err := os.ReadFile(filepath.Join(dir, n.ID+".log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{z.Token, z.OperatorToken, "wrong-token", "not for the audit log", "plaintext-not-audited",
			base64.StdEncoding.EncodeToString([]byte("plaintext-not-audited"))} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s's audit log holds %q", n.ID, secret)
			}
		}
	}
}
