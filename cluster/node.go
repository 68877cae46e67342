package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/keyzone/keyzone/fsm"
	"go.etcd.io/bbolt"
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
	// pool is set by Start while the API may already serve requests
	// (status, forwarded proposals), hence atomic.
	pool atomic.Pointer[pool]
	http *http.Client

	notifyCh chan bool
	// bootstraps counts successful BootstrapCluster calls (tests check
	// that exactly one node of a zone bootstraps).
	bootstraps atomic.Int32

	mu      sync.Mutex
	tasks   []LeaderTask
	started bool
	// readyTerm is the term whose Barrier this node passed as leader, 0
	// when none: a leader is ready only while it still leads in that term.
	readyTerm uint64
	// removal is this node's own removal record once it learns of it
	// (removed.go); the node then stays out of the zone.
	removal atomic.Pointer[fsm.RemovedNode]

	// restoreMu lets one snapshot restore run at a time.
	restoreMu sync.Mutex

	gate applyGate

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
		http:     newHTTPClient(cfg.PeerTLS),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.removeStaleSnapshotFiles()
	if err := n.openRaft(); err != nil {
		n.cancel()
		n.closeStores()
		return nil, err
	}
	return n, nil
}

// newHTTPClient returns the client of node-to-node calls. The dial is
// bounded so that a leader that vanished (no answer at all, not even a
// refusal) is given up on and looked up again within LeaderWait; the
// call itself is bounded by the caller's context and by the leader's
// raft timeouts. peerTLS (cloned) verifies https peers; nil trusts the
// system pool.
func newHTTPClient(peerTLS *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     peerTLS.Clone(),
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// logCacheSize is the number of recent log entries kept in memory for
// replication: a few batches of raft's largest append.
const logCacheSize = 1024

func (n *Node) openRaft() error {
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	// NoSync stays false: an acknowledged write must survive power loss.
	// The free-page list is not written with every commit: it grows with
	// the space snapshots free in raft.db, and writing it each time made
	// every write pay for the size of the file. BoltDB rebuilds it from the
	// pages when it opens the file; no data depends on it.
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(raftDir, "raft.db"),
		BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
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
	trans, err := raft.NewTCPTransportWithConfig(n.cfg.RaftBind, advertise, &raft.NetworkTransportConfig{
		MaxPool: 5,
		Timeout: 10 * time.Second,
		Logger:  n.cfg.Logger.Named("raft"),
		// 1 turns raft's pipelined replication off. With it on, a
		// follower's refused append (a new term, a gap) can leave the
		// pipeline's sender and its response decoder waiting on each
		// other: that follower gets heartbeats but no entry ever again,
		// and Shutdown waits forever for the sender. Batched appends keep
		// replication fast without it.
		MaxRPCsInFlight: 1,
	})
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
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.NotifyCh = n.notifyCh
	// The apply gate hands raft a batch of entries at once: a buffered
	// apply channel lets the leader loop find them all in one pass.
	rc.BatchApplyCh = true
	// Replication reads each new entry back for every follower: the
	// cache serves the recent ones from memory instead of BoltDB.
	logs, err := raft.NewLogCache(logCacheSize, store)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, store, snaps, trans)
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
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("cluster: node already started")
	}
	if n.ctx.Err() != nil {
		return ErrShutdown
	}
	p, err := newPool(n.cfg, string(n.transport.LocalAddr()), n.logger)
	if err != nil {
		return err
	}
	n.started = true
	n.pool.Store(p)
	if len(n.cfg.Join) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			p.joinLoop(n.ctx, n.cfg.Join)
		}()
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.bootstrapLoop()
	}()
	go func() {
		defer n.wg.Done()
		n.removalLoop()
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
	p := n.pool.Load()
	if p == nil {
		return ""
	}
	return p.address()
}

// IsLeader reports whether this node currently leads its zone.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Raft exposes the raft instance to tests and admin tooling.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Shutdown leaves the pool, stops Raft and closes the stores. It is safe
// to call more than once.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		// Under mu, so that a concurrent Start either finished (its
		// goroutines are in wg) or will see the cancelled context.
		n.mu.Lock()
		n.cancel()
		n.mu.Unlock()
		var errs []error
		if p := n.pool.Load(); p != nil {
			errs = append(errs, p.shutdown())
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
// restarted node or zone keeps its configuration; nor while one of the
// chosen members has Raft state (asked over the internal API, as Consul
// asks its peers before bootstrapping): a node that joins a running zone
// with the zone's bootstrap-expect and an id that sorts first, or a
// member whose data dir was wiped, waits to be added by the leader
// instead of starting a configuration of its own.
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
		if n.hasRaftState() || n.removal.Load() != nil {
			return
		}
		members := n.pool.Load().zoneMembers(n.cfg.Zone)
		if len(members) < n.cfg.BootstrapExpect {
			continue
		}
		members = members[:n.cfg.BootstrapExpect]
		if members[0].ID != n.cfg.NodeID {
			// Another node bootstraps; this one is done once it hears
			// from the leader (hasRaftState turns true).
			continue
		}
		if err := n.peersWithoutState(members[1:]); err != nil {
			n.logger.Debug("not bootstrapping", "reason", err)
			continue
		}
		var servers []raft.Server
		for _, m := range members {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddress)})
		}
		n.logger.Info("bootstrapping zone", "zone", n.cfg.Zone, "voters", len(servers))
		err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		switch {
		case err == nil:
			n.bootstraps.Add(1)
		case errors.Is(err, raft.ErrCantBootstrap):
			// Raft state appeared since the check: a leader reached us.
		default:
			n.logger.Error("bootstrap failed", "error", err)
			continue
		}
		return
	}
}

// peersWithoutState returns nil once every member says it has no Raft
// state, else why not.
func (n *Node) peersWithoutState(members []Member) error {
	for _, m := range members {
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		var out raftStateResponse
		err := n.callPeer(ctx, m, http.MethodGet, internalRaftState, nil, &out)
		cancel()
		switch {
		case err != nil:
			return fmt.Errorf("ask %s for its raft state: %w", m.ID, err)
		case out.HasState:
			return fmt.Errorf("%s already has raft state: the zone exists", m.ID)
		}
	}
	return nil
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
//
// Raft sends every change on NotifyCh, in order, and blocks while the
// buffer is full, so none is missed; but this loop may be late, e.g. while
// it waits for the tasks of a lost term to return. Readiness is therefore
// tied to the term whose Barrier passed (readyTerm), not to the last
// notification handled: a node that leads again in a later term is not
// ready before this loop has run that term's Barrier.
func (n *Node) leadershipLoop() {
	var (
		leaderCancel context.CancelFunc
		leaderWG     sync.WaitGroup
	)
	stop := func() {
		n.setReadyTerm(0)
		if leaderCancel != nil {
			leaderCancel()
			leaderWG.Wait()
			leaderCancel = nil
		}
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
	var term uint64
	for {
		// The term is read before the Barrier: if the Barrier commits, it
		// did so in this term or a later one, and a later one never
		// matches readyTerm (terms only grow).
		term = n.raft.CurrentTerm()
		err := n.await(n.raft.Barrier(n.cfg.ApplyTimeout))
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
	if ctx.Err() != nil {
		n.mu.Unlock()
		return
	}
	n.readyTerm = term
	tasks := append([]LeaderTask(nil), n.tasks...)
	n.mu.Unlock()
	n.logger.Info("leader ready", "zone", n.cfg.Zone, "term", term)
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

func (n *Node) setReadyTerm(term uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.readyTerm = term
}

// reconcileLoop adds every live pool member of this zone that is not yet
// a voter, but those in the zone's removed set. Only the leader turns
// membership into Raft configuration.
func (n *Node) reconcileLoop(ctx context.Context) {
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	p := n.pool.Load()
	for {
		// Take the change channel first, so that a change during
		// reconcile wakes the next round.
		changed := p.changed()
		n.reconcile(p)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-changed:
		}
	}
}

func (n *Node) reconcile(p *pool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	removed := n.removedSet()
	voters := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		voters[s.ID] = s.Address
	}
	for _, m := range p.zoneMembers(n.cfg.Zone) {
		addr, ok := voters[raft.ServerID(m.ID)]
		if (ok && addr == raft.ServerAddress(m.RaftAddress)) || removed[raft.ServerID(m.ID)] {
			continue
		}
		n.logger.Info("adding voter", "node", m.ID, "raft_address", m.RaftAddress)
		if err := n.await(n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddress), 0, n.cfg.ApplyTimeout)); err != nil {
			n.logger.Warn("add voter failed", "node", m.ID, "error", err)
		}
	}
}

// isLeaderReady reports whether this node leads and has passed the
// Barrier of its current term.
func (n *Node) isLeaderReady() bool {
	n.mu.Lock()
	ready := n.readyTerm
	n.mu.Unlock()
	return ready != 0 && n.raft.State() == raft.Leader && n.raft.CurrentTerm() == ready
}
