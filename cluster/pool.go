package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Member is a node as the gossip pool advertises it.
type Member struct {
	ID          string `json:"id"`
	Zone        string `json:"zone"`
	APIAddress  string `json:"api"`
	RaftAddress string `json:"raft"`
}

// pool wraps memberlist. memberlist only discovers nodes; the leader alone
// turns what it sees into Raft configuration.
type pool struct {
	ml     *memberlist.Memberlist
	logger hclog.Logger
	meta   []byte

	mu     sync.Mutex
	notify chan struct{}
	// live holds every member memberlist reported alive, copied in its
	// event callbacks: memberlist rewrites the *Node values Members()
	// returns in place (memberlist#306), and its callbacks are the one
	// place they can be read without racing those writes.
	live map[string]Member
	// known keeps the last metadata of every node ever seen, live or not:
	// gossip between the nodes of a zone may fail while their Raft
	// traffic goes on (a zone cut off the network its gossip advertises),
	// and a follower must still find its leader's API to forward to.
	known map[string]Member
}

func newPool(cfg Config, raftAddr string, logger hclog.Logger) (*pool, error) {
	host, portStr, err := net.SplitHostPort(cfg.GossipBind)
	if err != nil {
		return nil, fmt.Errorf("gossip bind: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind port: %w", err)
	}
	self := Member{ID: cfg.NodeID, Zone: cfg.Zone, APIAddress: cfg.APIAddress, RaftAddress: raftAddr}
	meta, err := json.Marshal(self)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, more than gossip allows (%d)", len(meta), memberlist.MetaMaxSize)
	}
	p := &pool{logger: logger.Named("gossip"), meta: meta, notify: make(chan struct{}), live: map[string]Member{}, known: map[string]Member{}}

	mc := memberlist.DefaultLANConfig()
	if cfg.GossipProfile == "local" {
		mc = memberlist.DefaultLocalConfig()
		// On loopback a full state sync is cheap; syncing every second
		// bounds how long a node can miss a join whose broadcast it did
		// not receive (the default is 15 s).
		mc.PushPullInterval = time.Second
	}
	mc.Name = cfg.NodeID
	mc.BindAddr = host
	mc.BindPort = port
	if cfg.GossipAdvertise != "" {
		ah, ap, err := net.SplitHostPort(cfg.GossipAdvertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise: %w", err)
		}
		mc.AdvertiseAddr = ah
		if mc.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return nil, fmt.Errorf("gossip advertise port: %w", err)
		}
	}
	if len(cfg.GossipKey) > 0 {
		mc.SecretKey = cfg.GossipKey
	}
	mc.Delegate = p
	mc.Events = p
	mc.LogOutput = nil
	mc.Logger = p.logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	p.ml = ml
	return p, nil
}

func (p *pool) address() string {
	n := p.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// joinLoop retries joining until one address answers, so that nodes may
// start in any order.
func (p *pool) joinLoop(ctx context.Context, addrs []string) {
	backoff := 100 * time.Millisecond
	for {
		n, err := p.ml.Join(addrs)
		if err == nil && n > 0 {
			p.logger.Info("joined pool", "contacted", n)
			return
		}
		p.logger.Debug("join failed, retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

// zoneMembers returns the live members of a zone sorted by id.
func (p *pool) zoneMembers(zone string) []Member {
	var out []Member
	for _, m := range p.members() {
		if m.Zone == zone {
			out = append(out, m)
		}
	}
	return out
}

// members returns every live member with valid metadata, sorted by id.
func (p *pool) members() []Member {
	p.mu.Lock()
	out := make([]Member, 0, len(p.live))
	for _, m := range p.live {
		out = append(out, m)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// record copies n's metadata while memberlist holds its lock.
func (p *pool) record(n *memberlist.Node) {
	var m Member
	valid := json.Unmarshal(n.Meta, &m) == nil && m.ID != ""
	p.mu.Lock()
	if valid {
		p.live[n.Name] = m
		p.known[n.Name] = m
	} else {
		delete(p.live, n.Name)
	}
	p.mu.Unlock()
}

func (p *pool) forget(n *memberlist.Node) {
	p.mu.Lock()
	delete(p.live, n.Name)
	p.mu.Unlock()
}

// member returns the node id as last seen, live or not.
func (p *pool) member(id string) (Member, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.known {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// changed returns a channel closed at the next membership change.
func (p *pool) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

func (p *pool) signal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.notify)
	p.notify = make(chan struct{})
}

func (p *pool) shutdown() error {
	if err := p.ml.Leave(time.Second); err != nil {
		p.logger.Warn("leave pool", "error", err)
	}
	return p.ml.Shutdown()
}

// memberlist.Delegate: only the node metadata is used.
func (p *pool) NodeMeta(limit int) []byte                  { return p.meta }
func (p *pool) NotifyMsg([]byte)                           {}
func (p *pool) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (p *pool) LocalState(join bool) []byte                { return nil }
func (p *pool) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate
func (p *pool) NotifyJoin(n *memberlist.Node) {
	p.logger.Debug("member joined", "node", n.Name)
	p.record(n)
	p.signal()
}
func (p *pool) NotifyLeave(n *memberlist.Node) {
	p.logger.Debug("member left", "node", n.Name)
	p.forget(n)
	p.signal()
}
func (p *pool) NotifyUpdate(n *memberlist.Node) {
	p.record(n)
	p.signal()
}

func (p *pool) knownZones() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.known {
		if !slices.Contains(out, m.Zone) {
			out = append(out, m.Zone)
		}
	}
	slices.Sort(out)
	return out
}
