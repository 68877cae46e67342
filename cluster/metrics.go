package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metric descriptions; labels are bounded by the number of zones.
var (
	descIsLeader     = prometheus.NewDesc("keyzone_raft_leader", "1 when this node leads its zone.", nil, nil)
	descApplied      = prometheus.NewDesc("keyzone_raft_applied_index", "Raft index this node has applied.", nil, nil)
	descKeys         = prometheus.NewDesc("keyzone_keys", "Live keys held by this node (primaries and replicas).", nil, nil)
	descChangeSeq    = prometheus.NewDesc("keyzone_change_log_sequence", "Head of this zone's change log.", nil, nil)
	descChangeLen    = prometheus.NewDesc("keyzone_change_log_entries", "Entries in this zone's compacted change log.", nil, nil)
	descZoneApplied  = prometheus.NewDesc("keyzone_replication_applied_sequence", "Sequence of a remote zone's change log this zone has applied.", []string{"zone"}, nil)
	descZoneAcked    = prometheus.NewDesc("keyzone_replication_acked_sequence", "Sequence of this zone's change log a remote zone has acknowledged.", []string{"zone"}, nil)
	descZoneLag      = prometheus.NewDesc("keyzone_replication_lag_entries", "This zone's change-log head minus what a remote zone acknowledged.", []string{"zone"}, nil)
	descZoneLagSecs  = prometheus.NewDesc("keyzone_replication_lag_seconds", "Age of the oldest change of this zone a remote zone has not acknowledged (0 when none).", []string{"zone"}, nil)
	descZoneNodes    = prometheus.NewDesc("keyzone_zone_nodes", "Live nodes of a zone in the gossip pool.", []string{"zone"}, nil)
	collectorMetrics = []*prometheus.Desc{descIsLeader, descApplied, descKeys, descChangeSeq, descChangeLen,
		descZoneApplied, descZoneAcked, descZoneLag, descZoneLagSecs, descZoneNodes}
)

// Collector returns a Prometheus collector reading this node's state at
// scrape time: Raft role and index, keys, the change log and replication
// progress with every remote zone.
func (n *Node) Collector() prometheus.Collector { return nodeCollector{n} }

type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range collectorMetrics {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	leader := 0.0
	if n.raft.State() == raft.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descIsLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(n.raft.AppliedIndex()))
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(n.fsm.KeyCount()))
	ch <- prometheus.MustNewConstMetric(descChangeSeq, prometheus.GaugeValue, float64(n.fsm.ChangeSeq()))
	ch <- prometheus.MustNewConstMetric(descChangeLen, prometheus.GaugeValue, float64(n.fsm.ChangeLogLen()))
	zones, _ := n.Zones(context.Background())
	for _, z := range zones {
		ch <- prometheus.MustNewConstMetric(descZoneNodes, prometheus.GaugeValue, float64(len(z.Nodes)), z.Name)
		if z.Local {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descZoneApplied, prometheus.GaugeValue, float64(z.Applied), z.Name)
		ch <- prometheus.MustNewConstMetric(descZoneAcked, prometheus.GaugeValue, float64(z.Acked), z.Name)
		ch <- prometheus.MustNewConstMetric(descZoneLag, prometheus.GaugeValue, float64(z.LagEntries), z.Name)
		ch <- prometheus.MustNewConstMetric(descZoneLagSecs, prometheus.GaugeValue, z.LagSeconds, z.Name)
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
	}
	if at == 0 {
		return 0
	}
	return max(0, time.Since(time.Unix(0, at)).Seconds())
}
