package test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// scrape returns a node's /metrics: the families declared (# TYPE) and
// every sample line by its name and labels.
func scrape(t *testing.T, addr string) (text string, families map[string]string, samples map[string]float64) {
	t.Helper()
	resp, err := http.Get(addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	families, samples = map[string]string{}, map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			families[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return string(b), families, samples
}

// TestMetrics_RealNode scrapes the leader of a real zone of three, with a
// second zone in the pool, and finds every Keyzone metric family with
// sensible values, and no key id or token anywhere.
func TestMetrics_RealNode(t *testing.T) {
	a := clustertest.New(t, 3, clustertest.Options{Zone: "metrics-a", SnapshotThreshold: 8, TrailingLogs: 4})
	b := clustertest.New(t, 1, clustertest.Options{Zone: "metrics-b", REK: a.REK, Token: a.OperatorToken, HomeZone: "metrics-a",
		NoOrganization: true, Join: a.GossipAddresses()})
	ctx := testCtx(t, 60*time.Second)
	leader := a.Leader()
	org := a.Org.ID
	var ids []string
	for i := range 9 {
		k, err := leader.Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: "m" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	multi, err := leader.Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: "multi", ReplicaZones: []string{"metrics-b"}})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, multi.ID)
	waitConverged(t, []*clustertest.Cluster{a, b}, a, multi.ID)
	// A restarted follower restores its state from its snapshot, once it
	// has taken one.
	f := a.Followers()[0]
	clustertest.WaitFor(t, 20*time.Second, f.ID+"'s first snapshot", func() bool {
		_, _, fs := scrape(t, f.Addr())
		return fs["keyzone_raft_last_snapshot_index"] > 0
	})
	a.Stop(f)
	a.Restart(f)
	a.WaitReady(30 * time.Second)
	// Requests through every node, so that whichever leads has counted
	// some.
	for _, n := range a.Nodes {
		cl, err := client.New(n.Addr(), a.Token)
		if err != nil {
			t.Fatal(err)
		}
		k, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "via-" + n.ID})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
		if _, err := cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("metered")}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.DisableKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}

	var text string
	var families map[string]string
	var samples map[string]float64
	clustertest.WaitFor(t, 20*time.Second, "a snapshot, a restore and the leader's contact with both followers", func() bool {
		text, families, samples = scrape(t, a.Leader().Addr())
		contacts := 0
		for s := range samples {
			if strings.HasPrefix(s, "keyzone_raft_peer_last_contact_seconds{") {
				contacts++
			}
		}
		// The leader's own snapshot: the timings may come from another
		// node of the process before the leader has taken one.
		return samples["keyzone_raft_snapshot_duration_seconds_count"] >= 1 &&
			samples["keyzone_raft_restore_duration_seconds_count"] >= 1 && contacts == 2 &&
			samples["keyzone_raft_last_snapshot_index"] > 0
	})
	leader = a.Leader()

	want := map[string]string{
		"keyzone_http_requests_total":            "counter",
		"keyzone_http_request_duration_seconds":  "histogram",
		"keyzone_raft_leader":                    "gauge",
		"keyzone_raft_state":                     "gauge",
		"keyzone_raft_term":                      "gauge",
		"keyzone_raft_commit_index":              "gauge",
		"keyzone_raft_applied_index":             "gauge",
		"keyzone_raft_last_contact_seconds":      "gauge",
		"keyzone_raft_peer_last_contact_seconds": "gauge",
		"keyzone_raft_last_snapshot_index":       "gauge",
		"keyzone_raft_snapshot_duration_seconds": "histogram",
		"keyzone_raft_restore_duration_seconds":  "histogram",
		"keyzone_raft_boltdb_size_bytes":         "gauge",
		"keyzone_keys":                           "gauge",
		"keyzone_keys_by_state":                  "gauge",
		"keyzone_change_log_sequence":            "gauge",
		"keyzone_change_log_entries":             "gauge",
		"keyzone_replication_applied_sequence":   "gauge",
		"keyzone_replication_acked_sequence":     "gauge",
		"keyzone_replication_lag_entries":        "gauge",
		"keyzone_replication_lag_seconds":        "gauge",
		"keyzone_zone_nodes":                     "gauge",
		"go_goroutines":                          "gauge",
		"process_resident_memory_bytes":          "gauge",
	}
	for name, typ := range want {
		if families[name] != typ {
			t.Errorf("family %s: got type %q, want %s", name, families[name], typ)
		}
	}

	positive := []string{
		`keyzone_raft_leader`,
		`keyzone_raft_state{state="leader"}`,
		`keyzone_raft_term`,
		`keyzone_raft_commit_index`,
		`keyzone_raft_applied_index`,
		`keyzone_raft_last_snapshot_index`,
		`keyzone_raft_boltdb_size_bytes`,
		`keyzone_change_log_sequence`,
		`keyzone_zone_nodes{zone="metrics-a"}`,
		`keyzone_zone_nodes{zone="metrics-b"}`,
		`keyzone_replication_acked_sequence{zone="metrics-b"}`,
		`keyzone_http_requests_total{code="201",method="POST",route="/v1/keys"}`,
		`keyzone_http_requests_total{code="200",method="POST",route="/v1/keys/:id/encrypt"}`,
		`keyzone_http_request_duration_seconds_count{code="200",method="POST",route="/v1/keys/:id/disable"}`,
	}
	for _, s := range positive {
		if samples[s] <= 0 {
			t.Errorf("sample %s: got %v, want > 0", s, samples[s])
		}
	}
	exact := map[string]float64{
		`keyzone_raft_state{state="follower"}`:                           0,
		`keyzone_raft_last_contact_seconds`:                              0,
		`keyzone_keys`:                                                   14, // 13 and the organization's default key
		`keyzone_keys_by_state{role="primary",state="enabled"}`:          11,
		`keyzone_keys_by_state{role="primary",state="disabled"}`:         3,
		`keyzone_keys_by_state{role="replica",state="enabled"}`:          0,
		`keyzone_keys_by_state{role="primary",state="pending_deletion"}`: 0,
		`keyzone_replication_lag_entries{zone="metrics-b"}`:              0,
	}
	clustertest.WaitFor(t, 20*time.Second, "zone metrics-b to acknowledge the change log", func() bool {
		_, _, samples = scrape(t, leader.Addr())
		return samples[`keyzone_replication_lag_entries{zone="metrics-b"}`] == 0
	})
	for s, v := range exact {
		if got, ok := samples[s]; !ok || got != v {
			t.Errorf("sample %s: got %v (present %t), want %v", s, got, ok, v)
		}
	}
	// The replica zone counts the key as a replica, and the default key,
	// which gained a replica in metrics-b when the zone appeared.
	waitConverged(t, []*clustertest.Cluster{a, b}, a, a.Org.DefaultKeyID)
	_, _, bs := scrape(t, b.Nodes[0].Addr())
	if got := bs[`keyzone_keys_by_state{role="replica",state="enabled"}`]; got != 2 {
		t.Errorf("replicas in metrics-b: got %v, want 2 (the multi-zone key and the default key)", got)
	}

	for _, secret := range append(ids, a.Token, a.OperatorToken, a.Org.DefaultKeyID) {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics holds %q", secret)
		}
	}
}
