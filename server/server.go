// Package server assembles one Keyzone node from its parts: the state
// machine, the Raft/gossip node, the key service and the HTTP API. It is
// the composition root shared by `keyzone server`, `keyzone dev` and the
// in-process test clusters, so that all three run the same wiring.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/zone"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is everything one node needs. Cluster.FSM, Cluster.APIAddress,
// Cluster.InternalToken, Cluster.RekID and Keys' REK/FSM/Proposer/Zone are
// filled in by Start.
type Config struct {
	Cluster cluster.Config
	Keys    keys.Config
	// APIBind is the host:port the HTTP API listens on (port 0: any free).
	APIBind string
	// APIAdvertise is the base URL other nodes reach this API on; it
	// defaults to http://<bound address>, or https://<bound address>
	// with TLS.
	APIAdvertise string
	// TLS, when set, makes the API listen with TLS only. It must hold
	// this node's certificate (Certificates or GetCertificate, e.g. for
	// reloading); a MinVersion below TLS 1.2 is raised to it, and TLS 1.3
	// is negotiated whenever the client offers it. Start keeps a clone.
	TLS *tls.Config
	// PeerTLS configures this node's calls to other nodes' https APIs
	// (forwarding within the zone and to other zones, change-log pulls):
	// its RootCAs are the authorities trusted for their certificates.
	// nil trusts the system pool. Start keeps a clone.
	PeerTLS *tls.Config
	// OperatorToken is the cluster operator's bearer token: it manages
	// organizations, their tokens and the cluster, and uses no
	// organization's keys. Nodes authenticate to each other with a token
	// derived from the root key instead, so every zone of a deployment is
	// given the same root key.
	OperatorToken string
	// HomeZone is the zone where organizations and tokens are written
	// (the node's own zone when empty); every zone of a deployment must
	// name the same one.
	HomeZone string
	// OrgKeyQuota is the key quota of an organization created without one
	// (fsm.DefaultKeyQuota when 0).
	OrgKeyQuota int
	// OrgRateLimit and OrgRateBurst are an organization's request rate
	// limit per node when its record sets none (requests/s, bucket size);
	// a rate <= 0 means no limit.
	OrgRateLimit float64
	OrgRateBurst int
	// ReplicationPollWait bounds how long a pull of another zone's change
	// log waits for a change (0: the zone package's default).
	ReplicationPollWait time.Duration
	// Audit receives one event per admin call; nil logs them under the
	// name "audit". Start does not close it.
	Audit  audit.Sink
	Logger hclog.Logger
}

// Server is a running node.
type Server struct {
	cfg      Config
	logger   hclog.Logger
	listener net.Listener
	http     *http.Server
	router   *api.Router
	fsm      *fsm.FSM
	node     *cluster.Node
	keys     *keys.Service
	repl     *zone.Replicator
	apiURL   string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// Compile-time checks that the parts fit the interfaces their consumers
// declare.
var (
	_ keys.Proposer      = (*cluster.Node)(nil)
	_ api.KeyService     = (*keys.Service)(nil)
	_ api.TenantService  = (*keys.Service)(nil)
	_ api.ClusterService = (*cluster.Node)(nil)
)

// Start opens the data dir, starts Raft, the gossip pool, the leader
// tasks and the API, and returns once the API listens. The zone may not
// have a leader yet.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.OperatorToken == "" {
		return nil, errors.New("operator token is required")
	}
	if cfg.Keys.REK == nil {
		return nil, errors.New("root key is required")
	}
	tlsConfig, err := apiTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsConfig
	cfg.PeerTLS = cfg.PeerTLS.Clone()
	ln, err := net.Listen("tcp", cfg.APIBind)
	if err != nil {
		return nil, fmt.Errorf("listen for api on %s: %w", cfg.APIBind, err)
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, listener: ln}
	s.apiURL = cfg.APIAdvertise
	if s.apiURL == "" {
		scheme := "http://"
		if cfg.TLS != nil {
			scheme = "https://"
		}
		s.apiURL = scheme + ln.Addr().String()
	}
	if err := s.start(); err != nil {
		ln.Close()
		if s.node != nil {
			s.node.Shutdown()
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	s.fsm = fsm.New(s.cfg.Logger, fsm.WithZone(s.cfg.Cluster.Zone))

	// Before Raft starts, so that no sample of the per-peer contact is
	// lost (see cluster.RecordRaftTelemetry).
	cluster.RecordRaftTelemetry()
	cc := s.cfg.Cluster
	cc.FSM = s.fsm
	cc.Logger = s.cfg.Logger
	cc.APIAddress = s.apiURL
	cc.PeerTLS = s.cfg.PeerTLS
	cc.InternalToken = s.cfg.Keys.REK.PeerToken()
	cc.GossipKey = s.cfg.Keys.REK.GossipKey()
	cc.RekID = s.cfg.Keys.REK.ID()
	node, err := cluster.Open(cc)
	if err != nil {
		return err
	}
	s.node = node

	kc := s.cfg.Keys
	kc.Zone = cc.Zone
	kc.FSM = s.fsm
	kc.Proposer = node
	kc.Logger = s.cfg.Logger
	kc.KnownZones = node.KnownZones
	kc.LiveZones = directory{node}.Zones
	kc.HomeZone = s.cfg.HomeZone
	if kc.HomeZone == "" {
		kc.HomeZone = cc.Zone
	}
	if s.cfg.OrgKeyQuota != 0 {
		kc.OrgKeyQuota = s.cfg.OrgKeyQuota
	}
	svc, err := keys.New(kc)
	if err != nil {
		return err
	}
	s.keys = svc
	node.OnLeader(svc.LeaderTask)

	repl, err := zone.New(zone.Config{
		Zone:      cc.Zone,
		FSM:       s.fsm,
		Proposer:  node,
		Directory: directory{node},
		Token:     s.cfg.Keys.REK.PeerToken(),
		TLS:       s.cfg.PeerTLS,
		Logger:    s.cfg.Logger,
		PollWait:  s.cfg.ReplicationPollWait,
	})
	if err != nil {
		return err
	}
	s.repl = repl
	node.OnLeader(repl.LeaderTask)
	internal := http.NewServeMux()
	internal.Handle(zone.ChangesPath, repl.Handler())
	internal.Handle("/v1/internal/", node.InternalHandler())

	reg := metricsRegistry(node)
	router, err := api.NewRouter(api.Config{
		Keys:          svc,
		Cluster:       node,
		OperatorToken: s.cfg.OperatorToken,
		Tenants:       svc,
		HomeZone:      kc.HomeZone,
		OrgRateLimit:  s.cfg.OrgRateLimit,
		OrgRateBurst:  s.cfg.OrgRateBurst,
		Internal:      internal,
		Zone:          cc.Zone,
		AppliedIndex:  s.fsm.AppliedIndex,
		Forwarder:     zone.NewForwarder(directory{node}, s.cfg.PeerTLS),
		Metrics:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Registerer:    reg,
		MaxPayload:    kc.MaxPayload,
		Logger:        s.cfg.Logger,
		NodeID:        cc.NodeID,
		Audit:         s.cfg.Audit,
	})
	if err != nil {
		return err
	}
	s.router = router
	s.http = &http.Server{
		Handler:           router,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         s.cfg.TLS,
		ErrorLog:          s.cfg.Logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		var err error
		if s.cfg.TLS != nil {
			// The certificate is in TLSConfig; ServeTLS adds HTTP/2.
			err = s.http.ServeTLS(s.listener, "", "")
		} else {
			err = s.http.Serve(s.listener)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("api server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		svc.Run(ctx)
	}()
	if err := node.Start(); err != nil {
		return err
	}
	s.logger.Info("node started", "node", cc.NodeID, "zone", cc.Zone, "api", s.apiURL,
		"raft", node.RaftAddress(), "gossip", node.GossipAddress())
	return nil
}

// apiTLS returns a clone of the API's TLS config c with TLS 1.2 at least,
// or nil without TLS. It refuses a config without a certificate, which
// would fail every handshake.
func apiTLS(c *tls.Config) (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return nil, errors.New("api tls: the config holds no certificate")
	}
	c = c.Clone()
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	return c, nil
}

// APIAddress is the base URL of this node's API.
func (s *Server) APIAddress() string { return s.apiURL }

// Node is the node's cluster membership.
func (s *Server) Node() *cluster.Node { return s.node }

// FSM is the node's replicated state.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Keys is the node's key service.
func (s *Server) Keys() *keys.Service { return s.keys }

// Shutdown stops accepting requests, lets running ones finish until ctx
// is done, then leaves the cluster and closes the data dir.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		var errs []error
		s.repl.Close()
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			s.http.Close()
		}
		// No request runs any more: what the audit log has not been
		// given yet is written before the process can exit.
		s.router.FlushAudit()
		s.cancel()
		errs = append(errs, s.node.Shutdown())
		s.wg.Wait()
		// Handlers that outlived the HTTP server's shutdown deadline
		// (it then closes connections without waiting for them) may have
		// queued records since.
		s.router.FlushAudit()
		s.err = errors.Join(errs...)
	})
	return s.err
}

// FlushAudit writes the audit records of answered calls that still wait
// in memory for their batch (at most about a millisecond's worth).
// Shutdown does it too.
func (s *Server) FlushAudit() { s.router.FlushAudit() }

// directory shows the gossip pool to the zone replicator.
type directory struct{ node *cluster.Node }

func (d directory) Peers() []zone.Peer {
	members := d.node.Members()
	out := make([]zone.Peer, 0, len(members))
	for _, m := range members {
		out = append(out, zone.Peer{ID: m.ID, Zone: m.Zone, APIAddress: m.APIAddress})
	}
	return out
}

// Zones lists the zones of the pool's live nodes, sorted.
func (d directory) Zones() []string {
	var out []string
	for _, m := range d.node.Members() {
		if !slices.Contains(out, m.Zone) {
			out = append(out, m.Zone)
		}
	}
	slices.Sort(out)
	return out
}

// metricsRegistry holds this node's metrics: its cluster and replication
// state, the Go runtime and process of the server, and (registered by the
// API) its requests. One registry per node, so that the nodes of an
// in-process test zone each serve their own.
func metricsRegistry(node *cluster.Node) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(node.Collector(), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
