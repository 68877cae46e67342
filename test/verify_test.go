package test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/client/verify"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// TestVerify_ZoneDownAndBack runs the check of `keyzone cluster verify`
// (package verify, which the command only renders) against real zones,
// asking a zone-a node as KEYZONE_ADDR would: the zones agree once
// converged; with zone-b stopped, zone-b is reported unreachable while
// zone-c still agrees; after zone-b restarts, everything converges again,
// the rotation it missed included.
func TestVerify_ZoneDownAndBack(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b", "zone-c"}, clustertest.Options{})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 180*time.Second)
	org := a.Org.ID

	svcA := a.Leader().Server().Keys()
	var ids []string
	for _, name := range []string{"global-1", "global-2"} {
		k, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: name, ReplicaZones: []string{"zone-b", "zone-c"}})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		ids = append(ids, k.ID)
	}
	if _, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "local-only"}); err != nil {
		t.Fatal(err)
	}
	// A key of zone-b replicated to zone-a: primaries in several zones.
	kb, err := b.Leader().Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: "from-b", ReplicaZones: []string{"zone-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svcA.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: ids[0]}}); err != nil {
		t.Fatalf("rotate: %v", err)
	}

	checker := &verify.Checker{
		Addr: a.Nodes[1].Addr(),
		Dial: func(addr string) (*client.Client, error) { return client.New(addr, a.OperatorToken) },
	}
	// The digests are the operator's: an organization's admin is refused.
	orgChecker := &verify.Checker{
		Addr: a.Nodes[1].Addr(),
		Dial: func(addr string) (*client.Client, error) { return client.New(addr, a.Token) },
	}
	if r, err := orgChecker.Check(ctx); err != nil || len(r.Unreachable()) != 3 {
		t.Fatalf("verify with an org-admin token: %v %s, want every zone's digest refused", err, r.Summary())
	} else if !strings.Contains(r.Zones[0].Error, "forbidden") {
		t.Errorf("verify with an org-admin token: zone-a's error %q does not say forbidden", r.Zones[0].Error)
	}
	// The multi-zone keys are the three of the test and the test
	// organization's default key (primary in zone-a, replicated to
	// zone-b and zone-c).
	r, err := checker.Wait(ctx, 30*time.Second)
	if err != nil {
		t.Fatalf("verify --wait 30s: %v", err)
	}
	if !r.OK() || r.KeysChecked != 4 || len(r.Zones) != 3 {
		t.Fatalf("converged: got %s %+v, want 4 multi-zone keys agreeing in 3 zones", r.Summary(), r)
	}
	for _, z := range r.Zones {
		if want := map[string]int{"zone-a": 4, "zone-b": 4, "zone-c": 3}[z.Name]; z.Keys != want {
			t.Errorf("%s holds %d multi-zone keys, want %d", z.Name, z.Keys, want)
		}
	}
	t.Log(r.Summary())

	// zone-b goes down; a rotation it can't see happens meanwhile.
	b.Shutdown()
	if _, err := svcA.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: ids[1]}}); err != nil {
		t.Fatalf("rotate with zone-b down: %v", err)
	}
	clustertest.WaitFor(t, 30*time.Second, "verify to report zone-b unreachable, the rest agreeing", func() bool {
		r, err = checker.Check(ctx)
		if err != nil {
			t.Logf("check: %v", err)
			return false
		}
		return slices.Equal(r.Unreachable(), []string{"zone-b"}) && len(r.Differences) == 0
	})
	if r.OK() {
		t.Fatal("report OK with zone-b down")
	}
	if zb := r.Zones[1]; zb.Name != "zone-b" || zb.Reachable || zb.Error == "" {
		t.Errorf("zone-b: got %+v, want unreachable with the reason", zb)
	}
	t.Logf("%s; zone-b: %s", r.Summary(), r.Zones[1].Error)
	// A short wait does not hide it: the time runs out and the report
	// still says so.
	if r, err := checker.Wait(ctx, 300*time.Millisecond); err != nil || r.OK() {
		t.Errorf("verify --wait 300ms with zone-b down: ok %v, %v; want a failed report", r.OK(), err)
	}

	for _, n := range b.Nodes {
		b.Restart(n)
	}
	// The rotation zone-b missed is promoted once it caught up; the
	// promotion itself is one more change for the replicas.
	clustertest.WaitFor(t, 60*time.Second, "the promotion of the rotation zone-b missed", func() bool {
		k, _ := a.Leader().Server().FSM().Key(ids[1])
		return k.CurrentVersion == 2 && k.PendingVersion == 0
	})
	r, err = checker.Wait(ctx, 60*time.Second)
	if err != nil || !r.OK() {
		t.Fatalf("after zone-b's restart: %v, %s %+v; want agreement", err, r.Summary(), r)
	}
	if r.KeysChecked != 4 {
		t.Errorf("keys checked: got %d, want 4", r.KeysChecked)
	}
	if _, ok := a.Leader().Server().FSM().Key(kb.ID); !ok {
		t.Errorf("zone-a lost its replica of zone-b's key %s", kb.ID)
	}
	t.Log(r.Summary())
}
