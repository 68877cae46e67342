package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/client/verify"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
)

// laggingCluster answers its first lag digest calls with an older state.
type laggingCluster struct {
	*apitest.Cluster
	lag    int32
	calls  atomic.Int32
	lagged cluster.DigestReport
}

func (c *laggingCluster) Digests(ctx context.Context) (cluster.DigestReport, error) {
	if c.calls.Add(1) <= c.lag {
		return c.lagged, nil
	}
	return c.Cluster.Digests(ctx)
}

type verifyEnv struct {
	*cliTestEnv
	b, c *laggingCluster
	srvC *httptest.Server
}

// newVerifyEnv is a deployment of three fake zones, zone-a at
// KEYZONE_ADDR. zone-a's fake digests (see apitest.NewCluster) hold key
// 1111… of zone-a replicated to zone-b and zone-c, and a replica of key
// 2222… of zone-b; the other zones hold what agrees with it.
func newVerifyEnv(t *testing.T) *verifyEnv {
	t.Helper()
	e := &verifyEnv{cliTestEnv: newCLITestEnv(t)}
	ka, kb := e.cluster.DigestResult.Keys[0], e.cluster.DigestResult.Keys[1]
	serve := func(zone string, keys ...fsm.KeyDigest) (*laggingCluster, *httptest.Server) {
		c := &laggingCluster{Cluster: apitest.NewCluster()}
		c.DigestResult = cluster.DigestReport{Zone: zone, Node: zone + "-node1", ChangeSeq: 3, Keys: keys}
		h, err := api.NewRouter(api.Config{Keys: apitest.NewKeys(), Cluster: c, Tenants: apitest.NewTenants(), OperatorToken: cliOperatorToken, Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return c, srv
	}
	var srvB *httptest.Server
	e.b, srvB = serve("zone-b", ka, kb)
	e.c, e.srvC = serve("zone-c", ka)
	e.cluster.ZonesResult = []cluster.ZoneStatus{
		{Name: "zone-a", Local: true, Nodes: []cluster.ZoneNode{{ID: "node-1", APIAddress: e.url}}},
		{Name: "zone-b", Nodes: []cluster.ZoneNode{{ID: "zone-b-node1", APIAddress: srvB.URL}}},
		{Name: "zone-c", Nodes: []cluster.ZoneNode{{ID: "zone-c-node1", APIAddress: e.srvC.URL}}},
	}
	return e
}

func TestCLI_Verify_Agree(t *testing.T) {
	e := newVerifyEnv(t)
	out := string(e.mustRun(t, nil, "cluster", "verify"))
	if want := "2 multi-zone keys, 3 zones, all replicas agree\n"; out != want {
		t.Errorf("output: got %q, want %q", out, want)
	}

	raw := e.mustRun(t, nil, "cluster", "verify", "-o", "json")
	r := cliJSON[verify.Report](t, raw)
	if !r.OK() || r.KeysChecked != 2 || len(r.Zones) != 3 || r.Zones[1].Node != "zone-b-node1" || r.Zones[0].ChangeSeq != 12 {
		t.Errorf("-o json: got %+v", r)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if string(fields["differences"]) != "[]" {
		t.Errorf("differences: got %s, want []", fields["differences"])
	}
}

func TestCLI_Verify_Differences(t *testing.T) {
	e := newVerifyEnv(t)
	id := e.cluster.DigestResult.Keys[0].KeyID
	e.c.DigestResult.Keys[0].Digest = strings.Repeat("c3", 32)
	e.b.DigestResult.Keys = e.b.DigestResult.Keys[:1] // zone-b's own key is gone

	out, err := e.run(t, nil, "cluster", "verify")
	if err == nil || !strings.Contains(err.Error(), "2 keys differ") {
		t.Errorf("error: got %v, want verify failed with 2 keys differing", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("output: got %q, want two problems and a summary", out)
	}
	if l := lines[0]; !strings.HasPrefix(l, "key "+id+": digest_differs in zone zone-c (primary zone zone-a): digest c3c3") ||
		!strings.Contains(l, "same change 12") {
		t.Errorf("first line: got %q", l)
	}
	if l := lines[1]; !strings.Contains(l, "missing_primary in zone zone-a (primary zone zone-b)") {
		t.Errorf("second line: got %q", l)
	}
	if want := "2 multi-zone keys, 3 zones: 2 keys differ"; lines[2] != want {
		t.Errorf("summary: got %q, want %q", lines[2], want)
	}

	out, _ = e.run(t, nil, "cluster", "verify", "-o", "json")
	r := cliJSON[verify.Report](t, out)
	if len(r.Differences) != 2 || r.Differences[0] != (verify.Difference{KeyID: id, PrimaryZone: "zone-a", Zone: "zone-c", Problem: verify.DigestDiffers, Detail: r.Differences[0].Detail}) {
		t.Errorf("-o json differences: got %+v", r.Differences)
	}
}

func TestCLI_Verify_UnreachableZone(t *testing.T) {
	e := newVerifyEnv(t)
	e.srvC.Close()
	out, err := e.run(t, nil, "cluster", "verify")
	if err == nil {
		t.Fatal("got nil error with zone-c down")
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "zone zone-c: unreachable: "+e.srvC.URL) ||
		lines[1] != "2 multi-zone keys, 3 zones: 1 zone unreachable (zone-c)" {
		t.Errorf("output: got %q", out)
	}
	r := cliJSON[verify.Report](t, must(e.run(t, nil, "cluster", "verify", "-o", "json")))
	if !slices.Equal(r.Unreachable(), []string{"zone-c"}) || r.Zones[2].Error == "" {
		t.Errorf("-o json zones: got %+v", r.Zones)
	}
}

func must(out []byte, _ error) []byte { return out }

func TestCLI_Verify_Wait(t *testing.T) {
	e := newVerifyEnv(t)
	e.b.lag = 3
	e.b.lagged = e.b.DigestResult
	e.b.lagged.Keys = []fsm.KeyDigest{e.b.DigestResult.Keys[0], e.b.DigestResult.Keys[1]}
	e.b.lagged.Keys[0].ReplicaSeq, e.b.lagged.Keys[0].Digest = 11, "old"

	if _, err := e.run(t, nil, "cluster", "verify"); err == nil {
		t.Fatal("lagging zone-b without --wait: got nil error")
	}
	out := string(e.mustRun(t, nil, "cluster", "verify", "--wait", "30s"))
	if !strings.HasSuffix(out, "all replicas agree\n") {
		t.Errorf("--wait: got %q", out)
	}
	if n := e.b.calls.Load(); n != 4 {
		t.Errorf("zone-b asked %d times, want 4", n)
	}
}

func TestCLI_Verify_BadFlags(t *testing.T) {
	e := newVerifyEnv(t)
	for _, args := range [][]string{
		{"cluster", "verify", "--wait", "-1s"},
		{"cluster", "verify", "-o", "yaml"},
		{"cluster", "verify", "extra"},
	} {
		if _, err := e.run(t, nil, args...); err == nil {
			t.Errorf("%v: got nil error", args)
		}
	}
	e.env["KEYZONE_TOKEN"], e.env["KEYZONE_OPERATOR_TOKEN"] = "", ""
	if _, err := e.run(t, nil, "cluster", "verify"); err == nil || !strings.Contains(err.Error(), "KEYZONE_OPERATOR_TOKEN or KEYZONE_TOKEN") {
		t.Errorf("no token: got %v", err)
	}
}
