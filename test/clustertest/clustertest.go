// Package clustertest starts real Keyzone zones in-process for tests:
// every node runs real Raft over loopback TCP, real BoltDB files in a
// temporary directory, the real gossip pool and the real HTTP API, wired
// exactly as `keyzone server` wires them.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
)

// Options tune a test zone. Zero values take test-friendly defaults:
// fast elections, deletion windows from one second, rotation periods
// from one second, a scheduler tick of 50 ms.
type Options struct {
	Zone              string
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// LeaderWait bounds how long a proposal or consistent read waits for
	// a leader (default 10 s).
	LeaderWait time.Duration
	// Keys overrides parts of the key service config (REK, FSM, Proposer
	// are always set by the helper).
	Keys keys.Config
	// Verbose sends node logs to t.Log at debug level.
	Verbose bool

	// Multi-zone: a zone of a deployment shares the root key and the
	// operator token of the others and joins their gossip pool (see
	// NewZones). HomeZone is where organizations and tokens are written
	// (this zone when empty).
	REK      *kzcrypto.REK
	Token    string // the operator token
	Join     []string
	HomeZone string
	// NoOrganization skips the test organization: Token stays empty and
	// the zone holds no key at start.
	NoOrganization bool
	// deferOrganization: NewZones creates the organization once every
	// zone is up, so that its default key has a replica in each.
	deferOrganization bool
	// ReplicationPollWait bounds one pull of another zone's change log
	// (default 2 s in tests).
	ReplicationPollWait time.Duration
	// Server, when set, adjusts each node's server config last (health
	// thresholds, the audit sink).
	Server func(*server.Config)
}

// Node is one node of a test zone.
type Node struct {
	ID  string
	Dir string

	mu      sync.Mutex
	srv     *server.Server
	cfg     server.Config
	stopped bool
}

// Server returns the running server (nil while stopped).
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Addr is the node's API base URL (stable across restarts).
func (n *Node) Addr() string { return n.cfg.APIAdvertise }

// TestOrganization is the organization New and NewZones create.
const TestOrganization = "test"

// Cluster is a test zone.
type Cluster struct {
	t testing.TB
	// Token is an org-admin token of organization "test" (created at
	// start unless Options.NoOrganization); OperatorToken is the cluster
	// operator's, for organizations and the cluster.
	Token         string
	OperatorToken string
	// Org is the test organization (zero with NoOrganization).
	Org    wire.Organization
	REK    *kzcrypto.REK
	Nodes  []*Node
	logger hclog.Logger
	opts   Options
	base   string // parent of the nodes' data dirs
	expect int    // the zone's bootstrap-expect
}

// New starts a zone of n nodes that bootstrap through the gossip pool
// with bootstrap-expect n, and waits until every node knows the leader.
// The zone is shut down when the test ends.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Zone == "" {
		opts.Zone = "zone-a"
	}
	rek, token := opts.REK, opts.Token
	if rek == nil {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		var err error
		if rek, err = kzcrypto.NewREK(raw); err != nil {
			t.Fatal(err)
		}
	}
	if token == "" {
		tok := make([]byte, 16)
		rand.Read(tok)
		token = "kz_test_" + hex.EncodeToString(tok)
	}
	c := &Cluster{t: t, OperatorToken: token, REK: rek, opts: opts, expect: n}
	c.logger = hclog.NewNullLogger()
	if opts.Verbose {
		c.logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}})
	}
	c.base = t.TempDir()
	// Registered first so that it also covers a failure below.
	t.Cleanup(c.Shutdown)
	join := opts.Join
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s-node%d", opts.Zone, i)
		node := &Node{ID: id, Dir: filepath.Join(c.base, id)}
		node.cfg = c.serverConfig(opts, node, n, join)
		if err := c.start(node); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		join = []string{node.cfg.Cluster.GossipBind}
	}
	c.WaitReady(30 * time.Second)
	if !opts.NoOrganization && !opts.deferOrganization {
		c.Org, c.Token = c.CreateOrganization(TestOrganization)
	}
	return c
}

// CreateOrganization creates an organization with the operator token
// (in this zone, which must be the home zone) and an org-admin token of
// it, and returns both once the token authenticates on every node of the
// zone.
func (c *Cluster) CreateOrganization(name string) (wire.Organization, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op, err := client.New(c.Nodes[0].Addr(), c.OperatorToken)
	if err != nil {
		c.t.Fatal(err)
	}
	var org wire.Organization
	WaitFor(c.t, 30*time.Second, "organization "+name+" created", func() bool {
		org, err = op.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: name})
		if err != nil {
			if ce, ok := errors.AsType[*client.Error](err); ok && ce.Code == wire.CodeOrganizationExists {
				// A retry of a creation whose answer was lost.
				org, err = op.GetOrganization(ctx, name)
				return err == nil
			}
			return false
		}
		return true
	})
	tok, err := op.CreateToken(ctx, org.ID, wire.CreateTokenRequest{Role: "org-admin", Description: "test harness"})
	if err != nil {
		c.t.Fatalf("create org-admin token of %s: %v", name, err)
	}
	c.WaitToken(tok.Secret, 30*time.Second)
	return org, tok.Secret
}

// WaitToken waits until the token authenticates on every running node
// of the zone: tokens are written in the home zone and reach the others
// through replication.
func (c *Cluster) WaitToken(secret string, timeout time.Duration) {
	c.t.Helper()
	WaitFor(c.t, timeout, "the token to authenticate on every node of "+c.opts.Zone, func() bool {
		for _, n := range c.Nodes {
			if n.Server() == nil {
				continue
			}
			cl, err := client.New(n.Addr(), secret)
			if err != nil {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = cl.WhoAmI(ctx)
			cancel()
			if err != nil {
				return false
			}
		}
		return true
	})
}

// start starts a new node and adds it to c.Nodes (so that Shutdown stops
// it), pinning the ports the OS chose so that a restart comes back on the
// addresses its peers know.
func (c *Cluster) start(node *Node) error {
	srv, err := server.Start(node.cfg)
	if err != nil {
		return err
	}
	node.srv = srv
	node.cfg.APIBind = trimScheme(srv.APIAddress())
	node.cfg.APIAdvertise = srv.APIAddress()
	node.cfg.Cluster.RaftBind = srv.Node().RaftAddress()
	node.cfg.Cluster.GossipBind = srv.Node().GossipAddress()
	c.Nodes = append(c.Nodes, node)
	return nil
}

// NodeOption changes how AddNode starts a node.
type NodeOption func(*nodeOptions)

type nodeOptions struct {
	id         string
	expect     int
	zoneExpect bool
	configure  []func(*server.Config)
}

// WithNodeID names the node (default: <zone>-node<N>, N one more than
// the number of nodes so far). Its data dir is named after it.
func WithNodeID(id string) NodeOption { return func(o *nodeOptions) { o.id = id } }

// WithBootstrapExpect sets the node's bootstrap-expect (default 0: it
// waits to be added by the leader).
func WithBootstrapExpect(n int) NodeOption {
	return func(o *nodeOptions) { o.expect, o.zoneExpect = n, false }
}

// WithZoneBootstrapExpect gives the node the bootstrap-expect the zone
// was started with, as an operator reusing the zone's settings would.
func WithZoneBootstrapExpect() NodeOption {
	return func(o *nodeOptions) { o.zoneExpect = true }
}

// WithConfig changes the node's server config after the helper filled
// it in (addresses, data dir, timings, keys).
func WithConfig(fn func(*server.Config)) NodeOption {
	return func(o *nodeOptions) { o.configure = append(o.configure, fn) }
}

// AddNode starts one more node of the zone, joining the gossip addresses
// of the running nodes, and returns it without waiting for the leader to
// add it. It is stopped with the others when the test ends.
func (c *Cluster) AddNode(opts ...NodeOption) *Node {
	c.t.Helper()
	o := nodeOptions{id: fmt.Sprintf("%s-node%d", c.opts.Zone, len(c.Nodes)+1)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.zoneExpect {
		o.expect = c.expect
	}
	var join []string
	for _, n := range c.Nodes {
		if n.Server() != nil {
			join = append(join, n.cfg.Cluster.GossipBind)
		}
	}
	node := &Node{ID: o.id, Dir: filepath.Join(c.base, o.id)}
	node.cfg = c.serverConfig(c.opts, node, o.expect, join)
	for _, fn := range o.configure {
		fn(&node.cfg)
	}
	if err := c.start(node); err != nil {
		c.t.Fatalf("start %s: %v", o.id, err)
	}
	return node
}

func (c *Cluster) serverConfig(opts Options, node *Node, expect int, join []string) server.Config {
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Zone, cc.DataDir = node.ID, opts.Zone, node.Dir
	cc.RaftBind, cc.GossipBind = "127.0.0.1:0", "127.0.0.1:0"
	cc.GossipProfile = "local"
	cc.Join = join
	cc.BootstrapExpect = expect
	cc.HeartbeatTimeout = 300 * time.Millisecond
	cc.ElectionTimeout = 300 * time.Millisecond
	cc.LeaderLeaseTimeout = 150 * time.Millisecond
	cc.LeaderWait = 10 * time.Second
	if opts.LeaderWait != 0 {
		cc.LeaderWait = opts.LeaderWait
	}
	if opts.SnapshotThreshold != 0 {
		cc.SnapshotThreshold = opts.SnapshotThreshold
		cc.SnapshotInterval = 200 * time.Millisecond
	}
	if opts.TrailingLogs != 0 {
		cc.TrailingLogs = opts.TrailingLogs
	}
	kc := opts.Keys
	kc.REK = c.REK
	if kc.MinDeletionWindow == 0 {
		kc.MinDeletionWindow = time.Second
	}
	if kc.MaxDeletionWindow == 0 {
		kc.MaxDeletionWindow = 30 * 24 * time.Hour
	}
	if kc.DefaultDeletionWindow == 0 {
		kc.DefaultDeletionWindow = 7 * 24 * time.Hour
	}
	if kc.MinRotationPeriod == 0 {
		kc.MinRotationPeriod = time.Second
	}
	if kc.TickInterval == 0 {
		kc.TickInterval = 50 * time.Millisecond
	}
	poll := opts.ReplicationPollWait
	if poll == 0 {
		poll = 2 * time.Second
	}
	cfg := server.Config{
		Cluster:             cc,
		Keys:                kc,
		APIBind:             "127.0.0.1:0",
		OperatorToken:       c.OperatorToken,
		HomeZone:            opts.HomeZone,
		Logger:              c.logger.Named(node.ID),
		ReplicationPollWait: poll,
	}
	if opts.Server != nil {
		opts.Server(&cfg)
	}
	return cfg
}

// WaitReady waits until every running node is ready (knows a leader it
// heard from recently).
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	WaitFor(c.t, timeout, "every node ready", func() bool {
		for _, n := range c.Nodes {
			s := n.Server()
			if s != nil && !s.Node().Health(context.Background()).Ready {
				return false
			}
		}
		return true
	})
}

// Leader waits for and returns the node that leads the zone.
func (c *Cluster) Leader() *Node {
	c.t.Helper()
	var leader *Node
	WaitFor(c.t, 20*time.Second, "a leader", func() bool {
		for _, n := range c.Nodes {
			if s := n.Server(); s != nil && s.Node().IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// Followers returns the running nodes that are not the leader.
func (c *Cluster) Followers() []*Node {
	c.t.Helper()
	leader := c.Leader()
	var out []*Node
	for _, n := range c.Nodes {
		if n != leader && n.Server() != nil {
			out = append(out, n)
		}
	}
	return out
}

// ServerConfig returns the config the node runs with (addresses pinned).
func (c *Cluster) ServerConfig(n *Node) server.Config { return n.cfg }

// Stop shuts a node down (its data dir stays).
func (c *Cluster) Stop(n *Node) {
	c.t.Helper()
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		c.t.Logf("shutdown %s: %v", n.ID, err)
	}
}

// Restart starts a stopped node again from its data dir, on the same
// addresses, joining the running nodes.
func (c *Cluster) Restart(n *Node) {
	c.t.Helper()
	cfg := n.cfg
	cfg.Cluster.Join = slices.Clone(c.opts.Join)
	for _, o := range c.Nodes {
		if o != n {
			cfg.Cluster.Join = append(cfg.Cluster.Join, o.cfg.Cluster.GossipBind)
		}
	}
	var srv *server.Server
	var err error
	// The OS may hold the old ports a moment after the shutdown.
	WaitFor(c.t, 10*time.Second, "restart of "+n.ID, func() bool {
		srv, err = server.Start(cfg)
		return err == nil
	})
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

// Wipe deletes the data dir of a stopped node, as replacing its disk
// would: Restart then starts it empty, under the same id and addresses.
func (c *Cluster) Wipe(n *Node) {
	c.t.Helper()
	if n.Server() != nil {
		c.t.Fatalf("wipe %s: stop it first", n.ID)
	}
	if err := os.RemoveAll(n.Dir); err != nil {
		c.t.Fatalf("wipe %s: %v", n.ID, err)
	}
}

// Zone is the zone's name.
func (c *Cluster) Zone() string { return c.opts.Zone }

// GossipAddresses returns the gossip addresses of the zone's nodes, for
// another zone to join the pool through.
func (c *Cluster) GossipAddresses() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.cfg.Cluster.GossipBind)
	}
	return out
}

// NewZones starts one zone of n nodes per name, sharing a root key, a
// token and one gossip pool, as a multi-zone deployment does. It returns
// once every zone has a leader and every node sees every zone.
func NewZones(t testing.TB, n int, names []string, opts Options) []*Cluster {
	t.Helper()
	var zones []*Cluster
	for _, name := range names {
		o := opts
		o.Zone = name
		o.HomeZone = names[0]
		o.deferOrganization = true
		if len(zones) > 0 {
			o.REK, o.Token = zones[0].REK, zones[0].OperatorToken
			for _, z := range zones {
				o.Join = append(o.Join, z.GossipAddresses()...)
			}
		}
		zones = append(zones, New(t, n, o))
	}
	WaitFor(t, 30*time.Second, "every node to see every zone", func() bool {
		for _, z := range zones {
			for _, node := range z.Nodes {
				if s := node.Server(); s != nil && len(s.Node().Members()) != n*len(names) {
					return false
				}
			}
		}
		return true
	})
	// A restarted node joins the pool through every other zone too: the
	// first zone, started before the others, would otherwise come back
	// knowing only its own nodes.
	for i, z := range zones {
		z.opts.Join = nil
		for j, o := range zones {
			if j != i {
				z.opts.Join = append(z.opts.Join, o.GossipAddresses()...)
			}
		}
	}
	if !opts.NoOrganization {
		org, token := zones[0].CreateOrganization(TestOrganization)
		for _, z := range zones {
			z.WaitToken(token, 30*time.Second)
			z.Org, z.Token = org, token
		}
	}
	return zones
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Stop(n)
		}()
	}
	wg.Wait()
}

// WaitFor polls cond until it holds or the timeout passes, then fails the
// test naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func trimScheme(u string) string {
	for _, p := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(u, p); ok {
			return rest
		}
	}
	return u
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
