package verify_test

import (
	"context"
	"fmt"
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
	"github.com/keyzone/keyzone/client/verify"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
)

// digest is a key as some zone holds it.
func digest(id, primary string, seq uint64, sum string, replicas ...string) wire.KeyDigest {
	if replicas == nil {
		replicas = []string{}
	}
	return wire.KeyDigest{KeyID: id, PrimaryZone: primary, ReplicaZones: replicas, Digest: sum, ReplicaSeq: seq}
}

func report(zone string, keys ...wire.KeyDigest) wire.DigestReport {
	return wire.DigestReport{Zone: zone, Node: zone + "-node1", Keys: keys}
}

// want is a Difference without its detail, plus words the detail must hold.
type want struct {
	key, primary, zone string
	problem            verify.Problem
	detail             string
}

func TestVerify_Compare(t *testing.T) {
	ab := digest("k1", "a", 5, "d5", "b")
	abc := digest("k1", "a", 5, "d5", "b", "c")
	tests := []struct {
		name        string
		reports     []wire.DigestReport
		unreachable []string
		keys        int
		want        []want
	}{
		{
			name:    "all agree",
			reports: []wire.DigestReport{report("a", abc, digest("k2", "b", 3, "e3", "a")), report("b", abc, digest("k2", "b", 3, "e3", "a")), report("c", abc)},
			keys:    2,
		},
		{
			name:    "nothing replicated",
			reports: []wire.DigestReport{report("a"), report("b")},
		},
		{
			name:    "replica missing",
			reports: []wire.DigestReport{report("a", abc), report("b", abc), report("c")},
			keys:    1,
			want:    []want{{"k1", "a", "c", verify.MissingReplica, "holds no replica"}},
		},
		{
			name:    "replica behind",
			reports: []wire.DigestReport{report("a", ab), report("b", digest("k1", "a", 4, "d4", "b"))},
			keys:    1,
			want:    []want{{"k1", "a", "b", verify.ReplicaBehind, "change 4"}},
		},
		{
			name:    "diverged at the same change",
			reports: []wire.DigestReport{report("a", ab), report("b", digest("k1", "a", 5, "dX", "b"))},
			keys:    1,
			want:    []want{{"k1", "a", "b", verify.DigestDiffers, "same change 5: diverged"}},
		},
		{
			name:    "replica set differs",
			reports: []wire.DigestReport{report("a", abc), report("b", digest("k1", "a", 5, "dX", "b")), report("c", abc)},
			keys:    1,
			want:    []want{{"k1", "a", "b", verify.DigestDiffers, "replica zones [b], the primary's [b c]"}},
		},
		{
			name:    "replica names another primary",
			reports: []wire.DigestReport{report("a", ab), report("b", digest("k1", "c", 5, "dX", "b")), report("c")},
			keys:    1,
			want:    []want{{"k1", "a", "b", verify.DigestDiffers, "names primary zone c"}},
		},
		{
			name:    "replica ahead of its primary",
			reports: []wire.DigestReport{report("a", ab), report("b", digest("k1", "a", 9, "d9", "b"))},
			keys:    1,
			want:    []want{{"k1", "a", "b", verify.DigestDiffers, "beyond the primary's 5"}},
		},
		{
			name:    "replica outside the replica set",
			reports: []wire.DigestReport{report("a", ab), report("b", ab), report("c", ab)},
			keys:    1,
			want:    []want{{"k1", "a", "c", verify.UnexpectedReplica, "not among the replica zones [b]"}},
		},
		{
			name:    "primary missing",
			reports: []wire.DigestReport{report("a"), report("b", ab)},
			keys:    1,
			want:    []want{{"k1", "a", "b", verify.MissingPrimary, "holds no such multi-zone key"}},
		},
		{
			name:    "primary zone unknown",
			reports: []wire.DigestReport{report("b", digest("k1", "x", 5, "d5", "b"))},
			keys:    1,
			want:    []want{{"k1", "x", "b", verify.MissingPrimary, "not a zone of the deployment"}},
		},
		{
			name:    "replica zone unknown",
			reports: []wire.DigestReport{report("a", digest("k1", "a", 5, "d5", "b", "x")), report("b", digest("k1", "a", 5, "d5", "b", "x"))},
			keys:    1,
			want:    []want{{"k1", "a", "x", verify.MissingReplica, "not a zone of the deployment"}},
		},
		{
			name:        "primary zone unreachable: its replicas are not judged",
			reports:     []wire.DigestReport{report("b", ab), report("c")},
			unreachable: []string{"a"},
			keys:        1,
		},
		{
			name:        "replica zone unreachable: the others are still compared",
			reports:     []wire.DigestReport{report("a", abc), report("c", digest("k1", "a", 4, "d4", "b", "c"))},
			unreachable: []string{"b"},
			keys:        1,
			want:        []want{{"k1", "a", "c", verify.ReplicaBehind, ""}},
		},
		{
			name:    "two primaries",
			reports: []wire.DigestReport{report("b", digest("k1", "b", 2, "d2", "a")), report("a", ab)},
			keys:    1,
			want: []want{
				// a is the primary (first by name); b's claim conflicts,
				// and a's replica set [b] is not held by b as a replica.
				{"k1", "a", "b", verify.ConflictingPrimary, "both hold it"},
				{"k1", "a", "b", verify.MissingReplica, ""},
			},
		},
		{
			name: "sorted by key, then zone",
			reports: []wire.DigestReport{
				report("a", digest("k2", "a", 2, "x", "b", "c"), digest("k1", "a", 1, "y", "c")),
				report("b"),
				report("c", digest("k1", "a", 0, "z", "c")),
			},
			keys: 2,
			want: []want{
				{"k1", "a", "c", verify.ReplicaBehind, ""},
				{"k2", "a", "b", verify.MissingReplica, ""},
				{"k2", "a", "c", verify.MissingReplica, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, diffs := verify.Compare(tt.reports, tt.unreachable)
			if keys != tt.keys {
				t.Errorf("keys: got %d, want %d", keys, tt.keys)
			}
			if len(diffs) != len(tt.want) {
				t.Fatalf("differences: got %v, want %d: %+v", diffs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				d := diffs[i]
				if d.KeyID != w.key || d.PrimaryZone != w.primary || d.Zone != w.zone || d.Problem != w.problem {
					t.Errorf("difference %d: got %+v, want %+v", i, d, w)
				}
				if !strings.Contains(d.Detail, w.detail) {
					t.Errorf("difference %d: detail %q, want it to say %q", i, d.Detail, w.detail)
				}
			}
		})
	}
}

func TestVerify_ReportSummary(t *testing.T) {
	up := func(name string) verify.Zone { return verify.Zone{Name: name, Reachable: true} }
	down := verify.Zone{Name: "b", Error: "connection refused"}
	diff := func(key, zone string) verify.Difference {
		return verify.Difference{KeyID: key, Zone: zone, PrimaryZone: "a", Problem: verify.MissingReplica}
	}
	tests := []struct {
		r    verify.Report
		ok   bool
		want string
	}{
		{verify.Report{Zones: []verify.Zone{up("a"), up("b"), up("c")}, KeysChecked: 3}, true, "3 multi-zone keys, 3 zones, all replicas agree"},
		{verify.Report{Zones: []verify.Zone{up("a")}, KeysChecked: 1}, true, "1 multi-zone key, 1 zone, all replicas agree"},
		{verify.Report{Zones: []verify.Zone{up("a"), up("c")}, KeysChecked: 2, Differences: []verify.Difference{diff("k1", "b"), diff("k1", "c")}},
			false, "2 multi-zone keys, 2 zones: 1 key differs"},
		{verify.Report{Zones: []verify.Zone{up("a"), down, up("c")}, KeysChecked: 2, Differences: []verify.Difference{diff("k1", "c"), diff("k2", "c")}},
			false, "2 multi-zone keys, 3 zones: 2 keys differ; 1 zone unreachable (b)"},
		{verify.Report{Zones: []verify.Zone{up("a"), down}}, false, "0 multi-zone keys, 2 zones: 1 zone unreachable (b)"},
	}
	for _, tt := range tests {
		if got := tt.r.Summary(); got != tt.want || tt.r.OK() != tt.ok {
			t.Errorf("got %q (ok %v), want %q (ok %v)", got, tt.r.OK(), tt.want, tt.ok)
		}
	}
}

// zoneServer is one fake node: the API over an apitest.Cluster whose
// first lagCalls digest answers are lagged.
type zoneServer struct {
	*apitest.Cluster
	srv      *httptest.Server
	calls    atomic.Int32
	lagCalls int32
	lagged   cluster.DigestReport
}

func (z *zoneServer) Digests(ctx context.Context) (cluster.DigestReport, error) {
	if z.calls.Add(1) <= z.lagCalls {
		return z.lagged, nil
	}
	return z.Cluster.Digests(ctx)
}

func (z *zoneServer) URL() string { return z.srv.URL }

// token is the operator's: digests are the operator's to read.
const token = "verify-test-token"

func newZoneServer(t *testing.T, zone, node string, keys ...fsm.KeyDigest) *zoneServer {
	t.Helper()
	z := &zoneServer{Cluster: apitest.NewCluster()}
	z.DigestResult = cluster.DigestReport{Zone: zone, Node: node, ChangeSeq: 7, Keys: keys}
	h, err := api.NewRouter(api.Config{
		Keys: apitest.NewKeys(), Cluster: z, Tenants: apitest.NewTenants(), OperatorToken: token,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	z.srv = httptest.NewServer(h)
	t.Cleanup(z.srv.Close)
	return z
}

func zoneNodes(urls ...string) []cluster.ZoneNode {
	out := []cluster.ZoneNode{}
	for i, u := range urls {
		out = append(out, cluster.ZoneNode{ID: fmt.Sprintf("n%d", i), APIAddress: u})
	}
	return out
}

func dial(addr string) (*client.Client, error) { return client.New(addr, token) }

// deployment is three fake zones: zone-a (asked first), zone-b whose
// first node is down, zone-c; key k1 is zone-a's, replicated to b and c.
func deployment(t *testing.T) (a, b, c *zoneServer) {
	t.Helper()
	k1 := fsm.KeyDigest{KeyID: "k1", PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"}, Digest: "d5", ReplicaSeq: 5}
	a = newZoneServer(t, "zone-a", "a1", k1)
	b = newZoneServer(t, "zone-b", "b2", k1)
	c = newZoneServer(t, "zone-c", "c1", k1)
	dead := httptest.NewServer(nil)
	dead.Close()
	a.ZonesResult = []cluster.ZoneStatus{
		{Name: "zone-a", Local: true, Nodes: zoneNodes(a.URL())},
		{Name: "zone-b", Nodes: zoneNodes(dead.URL, b.URL())},
		{Name: "zone-c", Nodes: zoneNodes(c.URL())},
	}
	return a, b, c
}

func TestVerify_CheckerAgree(t *testing.T) {
	a, b, _ := deployment(t)
	ch := &verify.Checker{Addr: a.URL(), Dial: dial}
	r, err := ch.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.KeysChecked != 1 || len(r.Zones) != 3 || r.Differences == nil {
		t.Fatalf("report: got %+v, want 3 zones agreeing on 1 key", r)
	}
	// zone-b's first node is down: its second answered.
	if zb := r.Zones[1]; zb.Name != "zone-b" || !zb.Reachable || zb.Node != "b2" || zb.Address != b.URL() || zb.Keys != 1 || zb.ChangeSeq != 7 {
		t.Errorf("zone-b: got %+v, want answered by b2 at %s", zb, b.URL())
	}
}

func TestVerify_CheckerDifferences(t *testing.T) {
	a, b, c := deployment(t)
	b.DigestResult.Keys = []fsm.KeyDigest{{KeyID: "k1", PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"}, Digest: "d4", ReplicaSeq: 4}}
	c.srv.Close()
	ch := &verify.Checker{Addr: a.URL(), Dial: dial}
	r, err := ch.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || len(r.Differences) != 1 || r.Differences[0].Problem != verify.ReplicaBehind || r.Differences[0].Zone != "zone-b" {
		t.Errorf("differences: got %+v, want zone-b behind", r.Differences)
	}
	if got := r.Unreachable(); !slices.Equal(got, []string{"zone-c"}) || !strings.Contains(r.Zones[2].Error, c.URL()) {
		t.Errorf("unreachable: got %v (%+v), want zone-c with the error of its node", got, r.Zones[2])
	}
	if want := "1 multi-zone key, 3 zones: 1 key differs; 1 zone unreachable (zone-c)"; r.Summary() != want {
		t.Errorf("summary: got %q, want %q", r.Summary(), want)
	}

	// A zone without a known node, and a node answering for another zone.
	a.ZonesResult[2].Nodes = []cluster.ZoneNode{}
	a.ZonesResult[1].Nodes = zoneNodes(a.URL())
	r, err = ch.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Zones[2].Error != "no live node known" || !strings.Contains(r.Zones[1].Error, `answered for zone "zone-a"`) {
		t.Errorf("zones: got %+v", r.Zones)
	}
}

func TestVerify_CheckerZonesFail(t *testing.T) {
	a, _, _ := deployment(t)
	a.ZonesErr = fmt.Errorf("read index: %w", cluster.ErrNoLeader)
	ch := &verify.Checker{Addr: a.URL(), Dial: dial}
	if _, err := ch.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "list zones") {
		t.Errorf("got %v, want the zones' error", err)
	}
	if _, err := (&verify.Checker{Addr: a.URL()}).Check(context.Background()); err == nil {
		t.Error("no Dial: got nil error")
	}
}

func TestVerify_CheckerWait(t *testing.T) {
	a, b, _ := deployment(t)
	b.lagCalls = 3
	b.lagged = b.DigestResult
	b.lagged.Keys = []fsm.KeyDigest{{KeyID: "k1", PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"}, Digest: "d4", ReplicaSeq: 4}}
	ch := &verify.Checker{Addr: a.URL(), Dial: dial, Interval: 10 * time.Millisecond}

	r, err := ch.Wait(context.Background(), 0)
	if err != nil || r.OK() {
		t.Fatalf("no wait: got ok %v, %v; want one check seeing the lag", r.OK(), err)
	}
	r, err = ch.Wait(context.Background(), 10*time.Second)
	if err != nil || !r.OK() {
		t.Fatalf("wait: got %+v, %v; want agreement once zone-b caught up", r, err)
	}
	if n := b.calls.Load(); n != 4 {
		t.Errorf("zone-b asked %d times, want 4 (3 lagging answers, then the agreeing one)", n)
	}

	// Never agreeing: the last report comes back when the time is up.
	b.lagCalls = 1 << 30
	start := time.Now()
	r, err = ch.Wait(context.Background(), 200*time.Millisecond)
	if err != nil || r.OK() || time.Since(start) < 200*time.Millisecond {
		t.Errorf("wait for a lag that stays: got ok %v, %v after %v", r.OK(), err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ch.Wait(ctx, time.Minute); err == nil {
		t.Error("cancelled context: got nil error")
	}
}
