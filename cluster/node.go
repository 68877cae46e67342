package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/keyzone/keyzone/fsm"
)

// LeaderTask runs on the leader only, from the moment the leader has
// applied every entry of earlier terms (Barrier) until leadership is lost
// or the node shuts down, which cancels ctx. It must return when ctx is
// done.
type LeaderTask func(ctx context.Context)

// Node is one Keyzone server's membership in its zone: a Raft voter over
// TCP with its log in BoltDB, and a member of the gossip pool.
type Node struct {
	cfg    Config
	logger hclog.Logger
	fsm    *fsm.FSM

	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	pool      *pool
	http      *http.Client

	notifyCh chan bool

	mu          sync.Mutex
	tasks       []LeaderTask
	leaderReady bool // Barrier done in the current leadership term

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open starts a node: it checks the data dir, opens the Raft stores,
// starts Raft and joins the gossip pool. Leader tasks must be registered
// with OnLeader before Start.
func Open(cfg Config) (*Node, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	if err := checkDataDir(&cfg); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		logger:   cfg.Logger.Named("cluster"),
		fsm:      cfg.FSM,
		notifyCh: make(chan bool, 16),
		http: &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.openRaft(); err != nil {
		n.closeStores()
		return nil, err
	}
	return n, nil
}

func (n *Node) openRaft() error {
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	// NoSync stays false: an acknowledged write must survive power loss.
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft store: %w", err)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, n.cfg.Logger.Named("raft"))
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	var advertise net.Addr
	if n.cfg.RaftAdvertise != "" {
		advertise, err = net.ResolveTCPAddr("tcp", n.cfg.RaftAdvertise)
		if err != nil {
			return fmt.Errorf("raft advertise address: %w", err)
		}
	}
	trans, err := raft.NewTCPTransportWithLogger(n.cfg.RaftBind, advertise, 5, 10*time.Second, n.cfg.Logger.Named("raft"))
	if err != nil {
		return fmt.Errorf("raft transport: %w", err)
	}
	n.transport = trans

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = n.cfg.Logger.Named("raft")
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.NotifyCh = n.notifyCh
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	return nil
}

// OnLeader registers a task to run while this node leads. Call it before
// Start.
func (n *Node) OnLeader(t LeaderTask) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tasks = append(n.tasks, t)
}

// Start joins the gossip pool and starts the loops that bootstrap the
// zone, follow leadership and reconcile membership.
func (n *Node) Start() error {
	p, err := newPool(n.cfg, string(n.transport.LocalAddr()), n.logger)
	if err != nil {
		return err
	}
	n.pool = p
	if len(n.cfg.Join) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.pool.joinLoop(n.ctx, n.cfg.Join)
		}()
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.bootstrapLoop()
	}()
	go func() {
		defer n.wg.Done()
		n.leadershipLoop()
	}()
	return nil
}

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Zone returns the node's zone.
func (n *Node) Zone() string { return n.cfg.Zone }

// RaftAddress returns the address Raft peers reach this node on.
func (n *Node) RaftAddress() string { return string(n.transport.LocalAddr()) }

// GossipAddress returns the address other nodes join the pool through.
func (n *Node) GossipAddress() string {
	if n.pool == nil {
		return ""
	}
	return n.pool.address()
}

// IsLeader reports whether this node currently leads its zone.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Raft exposes the raft instance to tests and admin tooling.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Shutdown leaves the pool, stops Raft and closes the stores. It is safe
// to call more than once.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		n.cancel()
		var errs []error
		if n.pool != nil {
			errs = append(errs, n.pool.shutdown())
		}
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		n.wg.Wait()
		errs = append(errs, n.closeStores())
		n.http.CloseIdleConnections()
		n.shutdownErr = errors.Join(errs...)
	})
	return n.shutdownErr
}

func (n *Node) closeStores() error {
	var errs []error
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// bootstrapLoop waits until BootstrapExpect nodes of the zone see each
// other and lets exactly one of them, the lowest id, bootstrap Raft with
// all of them. It never bootstraps a node that has Raft state, so a
// restarted node or zone keeps its configuration.
func (n *Node) bootstrapLoop() {
	if n.cfg.BootstrapExpect == 0 {
		return
	}
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-ticker.C:
		}
		if n.hasRaftState() {
			return
		}
		members := n.pool.zoneMembers(n.cfg.Zone)
		if len(members) < n.cfg.BootstrapExpect {
			continue
		}
		members = members[:n.cfg.BootstrapExpect]
		if members[0].ID != n.cfg.NodeID {
			// Another node bootstraps; this one is done once it hears
			// from the leader (hasRaftState turns true).
			continue
		}
		var servers []raft.Server
		for _, m := range members {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddress)})
		}
		n.logger.Info("bootstrapping zone", "zone", n.cfg.Zone, "voters", len(servers))
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.logger.Error("bootstrap failed", "error", err)
			continue
		}
		return
	}
}

func (n *Node) hasRaftState() bool {
	if n.raft.LastIndex() > 0 {
		return true
	}
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// leadershipLoop follows leadership changes: on gaining it, it waits for
// a Barrier (so reads and leader tasks see every earlier entry), then runs
// the leader tasks and the membership reconciler until it is lost.
func (n *Node) leadershipLoop() {
	var (
		leaderCancel context.CancelFunc
		leaderWG     sync.WaitGroup
	)
	stop := func() {
		if leaderCancel != nil {
			leaderCancel()
			leaderWG.Wait()
			leaderCancel = nil
		}
		n.mu.Lock()
		n.leaderReady = false
		n.mu.Unlock()
	}
	defer stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-n.notifyCh:
			stop()
			if !isLeader {
				n.logger.Info("lost leadership", "zone", n.cfg.Zone)
				continue
			}
			n.logger.Info("gained leadership", "zone", n.cfg.Zone, "term", n.raft.CurrentTerm())
			ctx, cancel := context.WithCancel(n.ctx)
			leaderCancel = cancel
			leaderWG.Add(1)
			go func() {
				defer leaderWG.Done()
				n.runLeader(ctx, &leaderWG)
			}()
		}
	}
}

func (n *Node) runLeader(ctx context.Context, wg *sync.WaitGroup) {
	for {
		err := n.raft.Barrier(n.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		n.logger.Warn("leader barrier failed", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		if n.raft.State() != raft.Leader {
			return
		}
	}
	n.mu.Lock()
	n.leaderReady = true
	tasks := append([]LeaderTask(nil), n.tasks...)
	n.mu.Unlock()
	wg.Add(len(tasks) + 1)
	go func() {
		defer wg.Done()
		n.reconcileLoop(ctx)
	}()
	for _, t := range tasks {
		go func() {
			defer wg.Done()
			t(ctx)
		}()
	}
}

// reconcileLoop adds every live pool member of this zone that is not yet
// a voter. Only the leader turns membership into Raft configuration.
func (n *Node) reconcileLoop(ctx context.Context) {
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	for {
		n.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-n.pool.changed():
		}
	}
}

func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		voters[s.ID] = s.Address
	}
	for _, m := range n.pool.zoneMembers(n.cfg.Zone) {
		addr, ok := voters[raft.ServerID(m.ID)]
		if ok && addr == raft.ServerAddress(m.RaftAddress) {
			continue
		}
		n.logger.Info("adding voter", "node", m.ID, "raft_address", m.RaftAddress)
		if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddress), 0, n.cfg.ApplyTimeout).Error(); err != nil {
			n.logger.Warn("add voter failed", "node", m.ID, "error", err)
		}
	}
}

func (n *Node) isLeaderReady() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderReady && n.raft.State() == raft.Leader
}
