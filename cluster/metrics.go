package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyzone/keyzone/fsm"
)

// Metric descriptions. Labels are bounded: zones, the voters of the zone,
// Raft states and key states; never key ids or tokens.
var (
	descIsLeader      = prometheus.NewDesc("keyzone_raft_leader", "1 when this node leads its zone.", nil, nil)
	descRaftState     = prometheus.NewDesc("keyzone_raft_state", "1 for this node's current Raft state, 0 for the others.", []string{"state"}, nil)
	descTerm          = prometheus.NewDesc("keyzone_raft_term", "Current Raft term.", nil, nil)
	descCommit        = prometheus.NewDesc("keyzone_raft_commit_index", "Highest Raft index this node knows to be committed.", nil, nil)
	descApplied       = prometheus.NewDesc("keyzone_raft_applied_index", "Raft index this node has applied.", nil, nil)
	descLastContact   = prometheus.NewDesc("keyzone_raft_last_contact_seconds", "Time since this follower last heard from its leader (0 on the leader; absent before the first contact).", nil, nil)
	descPeerContact   = prometheus.NewDesc("keyzone_raft_peer_last_contact_seconds", "On the leader: time since each other voter last answered a heartbeat or append (absent before its first answer).", []string{"peer"}, nil)
	descSnapshotIndex = prometheus.NewDesc("keyzone_raft_last_snapshot_index", "Raft index of this node's newest snapshot.", nil, nil)
	descBoltSize      = prometheus.NewDesc("keyzone_raft_boltdb_size_bytes", "Size of the BoltDB file holding this node's Raft log.", nil, nil)
	descKeys          = prometheus.NewDesc("keyzone_keys", "Live keys held by this node (primaries and replicas).", nil, nil)
	descKeysByState   = prometheus.NewDesc("keyzone_keys_by_state", "Live keys held by this node per lifecycle state and role (primary here, or replica of another zone's key).", []string{"state", "role"}, nil)
	descChangeSeq     = prometheus.NewDesc("keyzone_change_log_sequence", "Head of this zone's change log.", nil, nil)
	descChangeLen     = prometheus.NewDesc("keyzone_change_log_entries", "Entries in this zone's compacted change log.", nil, nil)
	descZoneApplied   = prometheus.NewDesc("keyzone_replication_applied_sequence", "Sequence of a remote zone's change log this zone has applied.", []string{"zone"}, nil)
	descZoneAcked     = prometheus.NewDesc("keyzone_replication_acked_sequence", "Sequence of this zone's change log a remote zone has acknowledged.", []string{"zone"}, nil)
	descZoneLag       = prometheus.NewDesc("keyzone_replication_lag_entries", "This zone's change-log head minus what a remote zone acknowledged.", []string{"zone"}, nil)
	descZoneLagSecs   = prometheus.NewDesc("keyzone_replication_lag_seconds", "Age of the oldest change of this zone a remote zone has not acknowledged (0 when none).", []string{"zone"}, nil)
	descZoneNodes     = prometheus.NewDesc("keyzone_zone_nodes", "Live nodes of a zone in the gossip pool.", []string{"zone"}, nil)
	collectorMetrics  = []*prometheus.Desc{descIsLeader, descRaftState, descTerm, descCommit, descApplied,
		descLastContact, descPeerContact, descSnapshotIndex, descBoltSize, descKeys, descKeysByState,
		descChangeSeq, descChangeLen, descZoneApplied, descZoneAcked, descZoneLag, descZoneLagSecs, descZoneNodes}

	raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}
	keyStates  = []fsm.KeyState{fsm.KeyStateEnabled, fsm.KeyStateDisabled, fsm.KeyStatePendingDeletion, fsm.KeyStatePendingImport}
)

// Collector returns a Prometheus collector reading this node's state at
// scrape time: Raft role, term and indexes, contact with the leader and
// (on the leader) with each voter, snapshots, the size of the Raft log's
// BoltDB file, keys per state, the change log and replication progress
// with every remote zone.
func (n *Node) Collector() prometheus.Collector { return nodeCollector{n} }

type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range collectorMetrics {
		ch <- d
	}
	telemetry.snapshots.Describe(ch)
	telemetry.restores.Describe(ch)
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	state := n.raft.State()
	leader := 0.0
	if state == raft.Leader {
		leader = 1
	}
	gauge(descIsLeader, leader)
	for _, s := range raftStates {
		v := 0.0
		if s == state {
			v = 1
		}
		gauge(descRaftState, v, strings.ToLower(s.String()))
	}
	gauge(descTerm, float64(n.raft.CurrentTerm()))
	gauge(descCommit, float64(n.raft.CommitIndex()))
	gauge(descApplied, float64(n.raft.AppliedIndex()))
	switch last := n.raft.LastContact(); {
	case state == raft.Leader:
		gauge(descLastContact, 0)
	case !last.IsZero():
		gauge(descLastContact, time.Since(last).Seconds())
	}
	if state == raft.Leader {
		c.collectPeerContacts(gauge)
	}
	if idx, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
		gauge(descSnapshotIndex, float64(idx))
	}
	if fi, err := os.Stat(filepath.Join(n.cfg.DataDir, "raft", "raft.db")); err == nil {
		gauge(descBoltSize, float64(fi.Size()))
	}
	telemetry.snapshots.Collect(ch)
	telemetry.restores.Collect(ch)

	gauge(descKeys, float64(n.fsm.KeyCount()))
	byState := n.fsm.KeysByState()
	for _, s := range keyStates {
		gauge(descKeysByState, float64(byState[s].Primary), string(s), "primary")
		gauge(descKeysByState, float64(byState[s].Replica), string(s), "replica")
	}
	gauge(descChangeSeq, float64(n.fsm.ChangeSeq()))
	gauge(descChangeLen, float64(n.fsm.ChangeLogLen()))
	zones, _ := n.Zones(context.Background())
	for _, z := range zones {
		gauge(descZoneNodes, float64(len(z.Nodes)), z.Name)
		if z.Local {
			continue
		}
		gauge(descZoneApplied, float64(z.Applied), z.Name)
		gauge(descZoneAcked, float64(z.Acked), z.Name)
		gauge(descZoneLag, float64(z.LagEntries), z.Name)
		gauge(descZoneLagSecs, z.LagSeconds, z.Name)
	}
}

// collectPeerContacts reports, for each other voter of the configuration,
// how long ago it last answered this leader.
func (c nodeCollector) collectPeerContacts(gauge func(*prometheus.Desc, float64, ...string)) {
	f := c.n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	now := time.Now()
	for _, s := range f.Configuration().Servers {
		id := string(s.ID)
		if id == c.n.cfg.NodeID {
			continue
		}
		if at, ok := telemetry.lastContact(id); ok {
			gauge(descPeerContact, now.Sub(at).Seconds(), id)
		}
	}
}

// lagSeconds is the age of the oldest change of this zone's log after
// acked, or 0 when there is none.
func (n *Node) lagSeconds(acked uint64) float64 {
	entries, _ := n.fsm.ChangesAfter(acked, 1)
	if len(entries) == 0 {
		return 0
	}
	e := entries[0]
	var at int64
	switch {
	case e.Key != nil:
		at = e.Key.UpdatedAt
	case e.Tombstone != nil:
		at = e.Tombstone.PurgedAt
	case e.Organization != nil:
		at = e.Organization.UpdatedAt
	case e.Token != nil:
		at = max(e.Token.CreatedAt, e.Token.RevokedAt)
	}
	if at == 0 {
		return 0
	}
	return max(0, time.Since(time.Unix(0, at)).Seconds())
}

// Raft telemetry.
//
// hashicorp/raft v1.7 keeps the leader's per-follower last contact
// unexported, and its snapshot timings are only emitted as go-metrics
// samples, to go-metrics' process-wide sink. RecordRaftTelemetry installs
// raftTelemetry as that sink; it keeps only what the node's collector and
// Health use:
//   - raft.replication.heartbeat and raft.replication.appendEntries.rpc,
//     labelled peer_id, which the leader emits after each successful RPC
//     to a follower: their time is that follower's last contact;
//   - raft.snapshot.persist (a snapshot written) and raft.fsm.restore (the
//     state replaced from a snapshot, at start or sent by the leader).
//
// Because the sink is process-wide, the contact map is keyed by node id
// and the snapshot histograms count every Raft instance of the process:
// one in a deployment, several in the in-process test zones (whose node
// ids are unique per zone name).
var (
	telemetry     = newRaftTelemetry()
	telemetryOnce sync.Once
)

// RecordRaftTelemetry routes hashicorp/raft's go-metrics samples to this
// package, for the per-peer last contact and the snapshot metrics. It
// replaces go-metrics' global sink (a blackhole by default), once per
// process; server.Start calls it. Without it those metrics are absent and
// Health judges voters by the gossip pool alone.
func RecordRaftTelemetry() {
	telemetryOnce.Do(func() {
		conf := metrics.DefaultConfig("")
		// No hostname in gauge names and no runtime-stats goroutine: the
		// Go collector of client_golang reports the runtime.
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false
		_, _ = metrics.NewGlobal(conf, telemetry)
	})
}

type raftTelemetry struct {
	mu       sync.Mutex
	contacts map[string]time.Time // by node id

	snapshots prometheus.Histogram
	restores  prometheus.Histogram
}

func newRaftTelemetry() *raftTelemetry {
	buckets := []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300}
	return &raftTelemetry{
		contacts: map[string]time.Time{},
		snapshots: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyzone_raft_snapshot_duration_seconds",
			Help:    "Time to write each Raft snapshot of the state machine (the count is the number of snapshots taken), for every Raft instance of the process.",
			Buckets: buckets,
		}),
		restores: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyzone_raft_restore_duration_seconds",
			Help:    "Time to restore the state machine from a snapshot (at start, or sent by the leader to a follower too far behind), for every Raft instance of the process.",
			Buckets: buckets,
		}),
	}
}

func (t *raftTelemetry) lastContact(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.contacts[id]
	return at, ok
}

// AddSampleWithLabels receives raft's timings (in milliseconds). It runs
// on raft's hot paths, so it returns at once for every other key.
func (t *raftTelemetry) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	if len(key) < 3 || key[0] != "raft" {
		return
	}
	switch {
	case key[1] == "replication" && (len(key) == 3 && key[2] == "heartbeat" ||
		len(key) == 4 && key[2] == "appendEntries" && key[3] == "rpc"):
		for _, l := range labels {
			if l.Name == "peer_id" {
				now := time.Now()
				t.mu.Lock()
				t.contacts[l.Value] = now
				t.mu.Unlock()
				return
			}
		}
	case len(key) == 3 && key[1] == "snapshot" && key[2] == "persist":
		t.snapshots.Observe(float64(val) / 1000)
	case len(key) == 3 && key[1] == "fsm" && key[2] == "restore":
		t.restores.Observe(float64(val) / 1000)
	}
}

// AddSample receives unlabelled samples: the same keys as above but the
// per-peer ones.
func (t *raftTelemetry) AddSample(key []string, val float32) { t.AddSampleWithLabels(key, val, nil) }

// The rest of go-metrics' sink interface: raft's gauges and counters are
// not exported (the collector reads the same values from raft itself).
func (t *raftTelemetry) SetGauge([]string, float32)                               {}
func (t *raftTelemetry) SetGaugeWithLabels([]string, float32, []metrics.Label)    {}
func (t *raftTelemetry) EmitKey([]string, float32)                                {}
func (t *raftTelemetry) IncrCounter([]string, float32)                            {}
func (t *raftTelemetry) IncrCounterWithLabels([]string, float32, []metrics.Label) {}
