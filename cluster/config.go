package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/fsm"
)

// Config describes one node. Addresses are host:port; a zero port in
// RaftBind or GossipBind asks the OS for a free one (tests), and the
// advertised address then follows the bound one.
type Config struct {
	NodeID  string
	Zone    string
	DataDir string

	RaftBind        string
	RaftAdvertise   string // defaults to the bound address
	GossipBind      string
	GossipAdvertise string // defaults to the bound address
	// APIAddress is this node's HTTP API base URL (http://host:port or
	// https://host:port), advertised to the pool so that followers can
	// forward to the leader.
	APIAddress string
	// PeerTLS configures the TLS of this node's calls to other nodes'
	// APIs (forwarded proposals, read indexes, snapshots): its RootCAs
	// are the authorities trusted for their certificates, nil meaning
	// the system pool. It matters only for https addresses. The node
	// keeps a clone.
	PeerTLS *tls.Config

	// Join lists gossip addresses of nodes already in the pool (any zone).
	Join []string
	// BootstrapExpect is the number of voters the zone starts with: once
	// that many nodes of the zone see each other, the one with the
	// lowest id bootstraps Raft with all of them. 0 never bootstraps
	// (the node waits to be added by a leader).
	BootstrapExpect int

	// GossipKey, when set (16, 24 or 32 bytes), encrypts and
	// authenticates gossip: only nodes holding it join the pool.
	GossipKey []byte
	// InternalToken authenticates node-to-node calls (forwarded proposals,
	// read indexes).
	InternalToken string
	// RekID is the fingerprint of the root key this node was given. The
	// data dir remembers the fingerprint it was written with; a node
	// started with another root key refuses to start.
	RekID string

	FSM    *fsm.FSM
	Logger hclog.Logger

	// Raft tuning. Zero values take DefaultConfig's.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long the leader waits without new entries
	// before telling followers the commit index. Followers serve crypto
	// from their own state, so a new version reaches them only then: 10 ms
	// instead of raft's 50 ms, for an idle heartbeat per follower.
	CommitTimeout     time.Duration
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether the log has grown
	// by SnapshotThreshold entries (it waits one to two intervals). The
	// log between snapshots lives in raft.db, whose pages stay mapped in
	// the process: at 2,000 writes a second, raft's two minutes let the
	// log reach 250,000 entries (600 MB of raft.db); 10 s keeps it under
	// 50,000. A check itself costs nothing.
	SnapshotInterval time.Duration
	TrailingLogs     uint64
	// ApplyTimeout bounds one raft.Apply on the leader.
	ApplyTimeout time.Duration
	// LeaderWait bounds how long a proposal waits for a leader to be
	// known before failing with ErrNoLeader.
	LeaderWait time.Duration
	// MaxSnapshotBytes bounds the state of an archive given to
	// RestoreSnapshot; 0 means DefaultMaxSnapshotBytes.
	MaxSnapshotBytes int64
	// GossipProfile is "lan" (default) or "local" (loopback dev and
	// tests: faster failure detection).
	GossipProfile string
	// ReplicationLagThreshold: a remote zone that has not acknowledged a
	// change of this zone for longer makes Health degraded (default 60 s).
	ReplicationLagThreshold time.Duration
}

// DefaultConfig returns production timings: raft's defaults, a snapshot
// once 8192 entries came in (checked every 10 to 20 s), 10240 trailing
// logs.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   10 * time.Second,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
		LeaderWait:         5 * time.Second,
		GossipProfile:      "lan",

		ReplicationLagThreshold: time.Minute,
	}
}

// Validate checks that the config can start a node.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if c.Zone == "" {
		errs = append(errs, errors.New("zone is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	addrs := []struct {
		name, addr string
		optional   bool
	}{
		{name: "raft bind", addr: c.RaftBind},
		{name: "raft advertise", addr: c.RaftAdvertise, optional: true},
		{name: "gossip bind", addr: c.GossipBind},
		{name: "gossip advertise", addr: c.GossipAdvertise, optional: true},
	}
	for _, a := range addrs {
		if a.optional && a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: %w", a.name, a.addr, err))
		}
	}
	if c.APIAddress == "" {
		errs = append(errs, errors.New("api address is required"))
	}
	if c.InternalToken == "" {
		// Without it every forwarded proposal and read index is refused.
		errs = append(errs, errors.New("internal token is required"))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, errors.New("bootstrap-expect must not be negative"))
	}
	if c.FSM == nil {
		errs = append(errs, errors.New("fsm is required"))
	}
	if c.RekID == "" {
		errs = append(errs, errors.New("root key id is required"))
	}
	if c.GossipProfile != "" && c.GossipProfile != "lan" && c.GossipProfile != "local" {
		errs = append(errs, fmt.Errorf("gossip profile %q: want lan or local", c.GossipProfile))
	}
	return errors.Join(errs...)
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = d.LeaderLeaseTimeout
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = d.CommitTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.LeaderWait == 0 {
		c.LeaderWait = d.LeaderWait
	}
	if c.GossipProfile == "" {
		c.GossipProfile = d.GossipProfile
	}
	if c.ReplicationLagThreshold == 0 {
		c.ReplicationLagThreshold = d.ReplicationLagThreshold
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}
