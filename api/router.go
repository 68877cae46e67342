package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/snapshot"
)

// KeyService is what the API needs of the key use cases; *keys.Service
// satisfies it. Every method takes the caller's organization in its
// parameters and returns errors the table in errors.go knows.
type KeyService interface {
	CreateKey(ctx context.Context, p keys.CreateParams) (*fsm.Key, error)
	GetKey(ctx context.Context, org, id string, stale bool) (*fsm.Key, error)
	ListKeys(ctx context.Context, p keys.ListParams) (keys.ListResult, error)
	UpdateKey(ctx context.Context, p keys.UpdateParams) (*fsm.Key, error)
	EnableKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error)
	DisableKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error)
	ProtectKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error)
	UnprotectKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error)
	CancelDeletion(ctx context.Context, r keys.KeyRef) (*fsm.Key, error)
	RotateKey(ctx context.Context, p keys.RotateParams) (*fsm.Key, error)
	ScheduleDeletion(ctx context.Context, p keys.ScheduleDeletionParams) (*fsm.Key, error)
	Encrypt(ctx context.Context, p keys.EncryptParams) (keys.CryptoResult, error)
	Decrypt(ctx context.Context, p keys.DecryptParams) (keys.CryptoResult, error)
	GenerateDataKey(ctx context.Context, p keys.DataKeyParams) (keys.CryptoResult, error)
	ReEncrypt(ctx context.Context, p keys.ReEncryptParams) (keys.CryptoResult, error)
	// AddReplica and RemoveReplica change a primary key's replica zones;
	// they validate the zone name.
	AddReplica(ctx context.Context, r keys.KeyRef, zone string) (*fsm.Key, error)
	RemoveReplica(ctx context.Context, r keys.KeyRef, zone string) (*fsm.Key, error)
	UpdatePrimary(ctx context.Context, p keys.UpdatePrimaryParams) (*fsm.Key, error)
	// ImportParameters and ImportKeyMaterial serve bring-your-own-key.
	ImportParameters(ctx context.Context, r keys.KeyRef) (keys.ImportParameters, error)
	ImportKeyMaterial(ctx context.Context, p keys.ImportMaterialParams) (*fsm.Key, error)
}

// ClusterService is what the API needs of the node; *cluster.Node
// satisfies it.
type ClusterService interface {
	Status(ctx context.Context) (cluster.Status, error)
	Health(ctx context.Context) cluster.Health
	// WaitApplied returns once the node has applied the Raft log up to
	// index, or fails when it can't within the context.
	WaitApplied(ctx context.Context, index uint64) error
	// Zones returns the node's view of every zone of the deployment, its
	// own first.
	Zones(ctx context.Context) ([]cluster.ZoneStatus, error)
	// Digests returns the digests of the multi-zone keys the node's zone
	// holds, as of a consistent read in the zone.
	Digests(ctx context.Context) (cluster.DigestReport, error)
	// Peers lists every voter of the zone with its state and progress.
	Peers(ctx context.Context) ([]cluster.PeerStatus, error)
	// RemovePeer removes a voter from the zone (cluster.ErrUnknownPeer,
	// ErrLastVoter, ErrRemoveLeader when it can't).
	RemovePeer(ctx context.Context, id string) error
	// TransferLeadership hands leadership to the voter id, or to any
	// voter when id is "".
	TransferLeadership(ctx context.Context, id string) error
	// Removed reports this node's removal from its zone, once it knows
	// of it: it then holds stale state and must not serve keys.
	Removed() (fsm.RemovedNode, bool)
	// SaveSnapshot returns the zone's snapshot archive as of a
	// consistent read.
	SaveSnapshot(ctx context.Context) (*cluster.Backup, error)
	// RestoreSnapshot checks the archive read from r and replaces the
	// zone's state with it.
	RestoreSnapshot(ctx context.Context, r io.Reader) (snapshot.Meta, error)
}

// DefaultMaxPayload is the plaintext limit when Config.MaxPayload is 0.
const DefaultMaxPayload = 64 << 10

// Body limit derivation: a ciphertext is the plaintext plus its envelope
// (format, key id, version, salt, nonce and GCM tag: 65 bytes, rounded up
// here), base64 makes it 4/3 larger, and the rest of the JSON (field
// names, encryption contexts, associated data) gets a fixed allowance.
const (
	ciphertextOverhead = 128
	jsonOverhead       = 64 << 10
)

// Config configures the router.
type Config struct {
	// Keys serves the key routes. Required.
	Keys KeyService
	// Cluster serves /v1/cluster/*, /v1/zones and /v1/health. Required.
	Cluster ClusterService
	// OperatorToken is the cluster operator's bearer token: it manages
	// organizations, their tokens and the cluster, and uses no
	// organization's keys. Required.
	OperatorToken string
	// Tenants authenticates organizations' tokens and serves the
	// organization and token routes. Required.
	Tenants TenantService
	// HomeZone is the zone where organizations and tokens are written; a
	// node of another zone forwards their changes there (Zone when empty).
	HomeZone string
	// OrgRateLimit and OrgRateBurst are an organization's request rate
	// limit per node (requests/s, bucket size) when its record sets none;
	// a rate <= 0 means no limit.
	OrgRateLimit float64
	OrgRateBurst int
	// Internal, when set, serves /v1/internal/* (node-to-node forwarding).
	// It is not behind the API's tokens: it must check the nodes' peer
	// token itself. It sees the full request path, e.g.
	// /v1/internal/propose, and reads the body without the API's limit.
	Internal http.Handler
	// MaxPayload is the largest plaintext accepted, in bytes; 0 means
	// DefaultMaxPayload. The request body limit is derived from it.
	MaxPayload int
	// Zone is the zone this node serves ("" in single-zone tests); it
	// qualifies session indexes and tells replicas from primaries.
	Zone string
	// AppliedIndex returns the node's applied Raft index (for the session
	// index of replica keys); nil uses key revisions only.
	AppliedIndex func() uint64
	// Forwarder, when set, sends lifecycle changes of replica keys on to
	// their primary zone.
	Forwarder ZoneForwarder
	// Metrics, when set, serves GET /metrics (Prometheus text format). It
	// needs no token: it holds no key material, no key ids and no tokens.
	Metrics http.Handler
	// Logger receives the request log (Debug) and failures; nil discards.
	Logger hclog.Logger
	// NodeID names this node in audit events.
	NodeID string
	// Registerer, when set, receives the request metrics (counts and
	// latencies per route pattern and status), for Metrics to serve.
	Registerer prometheus.Registerer
	// Audit receives one event per request of every route but health and
	// metrics; nil logs them to Logger under the name "audit". When it is
	// an audit.HealthReporter, changes are refused while it is unhealthy.
	Audit audit.Sink
}

// DefaultConfig returns a Config with every optional field at its default.
func DefaultConfig() Config {
	return Config{MaxPayload: DefaultMaxPayload}
}

// Validate reports the first problem of c.
func (c *Config) Validate() error {
	switch {
	case c.Keys == nil:
		return errors.New("api: config: Keys is required")
	case c.Cluster == nil:
		return errors.New("api: config: Cluster is required")
	case c.OperatorToken == "":
		return errors.New("api: config: OperatorToken is required")
	case c.Tenants == nil:
		return errors.New("api: config: Tenants is required")
	case c.MaxPayload < 0:
		return fmt.Errorf("api: config: MaxPayload %d is negative", c.MaxPayload)
	}
	return nil
}

// server holds what the handlers share. It is immutable once built.
type server struct {
	keys         KeyService
	cluster      ClusterService
	tenants      TenantService
	operatorHash [sha256.Size]byte
	homeZone     string
	limits       *rateLimits
	// policies holds each route's policy by "METHOD /v1/pattern".
	policies   map[string]policy
	maxPayload int
	maxBody    int64
	logger     hclog.Logger

	zone         string
	appliedIndex func() uint64
	forwarder    ZoneForwarder

	nodeID  string
	metrics *requestMetrics // nil: requests are not counted
	// auditQueue writes the audit records: those of changes at once,
	// the others in batches (see recordAudit).
	auditQueue *audit.Queue
	// auditHealth, when the sink reports it, gates changes (fail closed).
	auditHealth  audit.HealthReporter
	auditDropped prometheus.Counter
	ids          *requestIDs
}

// Router is the API's HTTP handler.
type Router struct {
	http.Handler
	audit *audit.Queue
}

// FlushAudit writes the audit records that wait in memory to be written
// in a batch: once the HTTP server has stopped, before the process exits.
func (r *Router) FlushAudit() { r.audit.Flush() }

// NewRouter validates cfg and returns the API's HTTP handler. It sets
// gin's process-wide mode to release, which only silences gin's own
// debug output.
func NewRouter(cfg Config) (*Router, error) {
	e, s, err := newRouter(cfg)
	if err != nil {
		return nil, err
	}
	return &Router{Handler: e, audit: s.auditQueue}, nil
}

// newRouter builds the router and returns it with the server its
// handlers share (the tests read its policies).
func newRouter(cfg Config) (*gin.Engine, *server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.HomeZone == "" {
		cfg.HomeZone = cfg.Zone
	}
	s := &server{
		keys:         cfg.Keys,
		cluster:      cfg.Cluster,
		tenants:      cfg.Tenants,
		operatorHash: sha256.Sum256([]byte(cfg.OperatorToken)),
		homeZone:     cfg.HomeZone,
		limits:       newRateLimits(cfg.OrgRateLimit, cfg.OrgRateBurst),
		policies:     make(map[string]policy),
		maxPayload:   cfg.MaxPayload,
		maxBody:      int64(base64.StdEncoding.EncodedLen(cfg.MaxPayload+ciphertextOverhead) + jsonOverhead),
		logger:       cfg.Logger.Named("api"),

		zone:         cfg.Zone,
		appliedIndex: cfg.AppliedIndex,
		forwarder:    cfg.Forwarder,
	}

	if err := s.initObservability(cfg); err != nil {
		return nil, nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(s.instrument, s.requestID, s.logRequest, s.recoverPanic, s.renderErrors)
	// Requests for no route are audited too: probing is worth a record.
	e.NoRoute(s.audit(policy{op: "unknown-route"}), func(c *gin.Context) { c.Error(errRouteNotFound) })
	e.NoMethod(s.audit(policy{op: "unknown-route"}), func(c *gin.Context) { c.Error(errMethodNotAllowed) })

	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics))
	}

	v1 := e.Group("/v1")
	v1.GET("/health", s.health)
	v1.GET("/health/live", s.live)

	// Every other route is audited, authenticated, authorized by its
	// policy and rate limited, in that order: the audit comes first so
	// that refused calls are recorded too.
	handle := func(method, path string, pol policy, handlers ...gin.HandlerFunc) {
		chain := append([]gin.HandlerFunc{s.audit(pol), s.authenticate, s.authorize(pol), s.rateLimit}, handlers...)
		v1.Handle(method, path, chain...)
		s.policies[method+" /v1"+path] = pol
	}
	// Key reads and crypto are refused by a node removed from its zone
	// (its state is stale); a lifecycle change of a replica key goes on
	// to its primary zone; tenancy changes go to the home zone.
	read := []gin.HandlerFunc{resolveDefaultKey, s.refuseIfRemoved, s.minIndex}
	change := []gin.HandlerFunc{resolveDefaultKey, s.minIndex, s.forwardToPrimary}
	home := []gin.HandlerFunc{s.forwardToHome}
	with := func(pre []gin.HandlerFunc, h gin.HandlerFunc) []gin.HandlerFunc {
		return append(append([]gin.HandlerFunc(nil), pre...), h)
	}

	handle("GET", "/whoami", policy{byOperator | anyRole, "whoami", opRead}, s.whoami)

	handle("GET", "/cluster/status", policy{byOperator | anyRole, "cluster-status", opRead}, s.minIndex, s.clusterStatus)
	handle("GET", "/zones", policy{byOperator | anyRole, "list-zones", opRead}, s.minIndex, s.zones)
	handle("GET", "/cluster/digest", policy{byOperator, "cluster-digest", opChange}, s.clusterDigest)
	handle("GET", "/cluster/peers", policy{byOperator, "list-peers", opChange}, s.clusterPeers)
	handle("DELETE", "/cluster/peers/:id", policy{byOperator, "remove-peer", opChange}, s.removePeer)
	handle("POST", "/cluster/transfer-leadership", policy{byOperator, "transfer-leadership", opChange}, s.transferLeadership)
	handle("GET", "/cluster/snapshot", policy{byOperator, "save-snapshot", opChange}, s.snapshotSave)
	handle("PUT", "/cluster/snapshot", policy{byOperator, "restore-snapshot", opChange}, s.snapshotRestore)

	handle("POST", "/orgs", policy{byOperator, "create-organization", opChange}, with(home, s.createOrganization)...)
	handle("GET", "/orgs", policy{byOperator, "list-organizations", opRead}, s.listOrganizations)
	handle("GET", "/orgs/:org", policy{byOperator | anyRole, "get-organization", opRead}, s.getOrganization)
	handle("PATCH", "/orgs/:org", policy{byOperator, "update-organization", opChange}, with(home, s.updateOrganization)...)
	handle("POST", "/orgs/:org/tokens", policy{byOperator | byOrgAdmin, "create-token", opChange}, with(home, s.createToken)...)
	handle("GET", "/orgs/:org/tokens", policy{byOperator | byOrgAdmin | byAuditor, "list-tokens", opRead}, s.listTokens)
	handle("DELETE", "/orgs/:org/tokens/:token", policy{byOperator | byOrgAdmin, "revoke-token", opChange}, with(home, s.revokeToken)...)

	handle("POST", "/keys", policy{keyAdmins, "create-key", opChange}, s.minIndex, s.createKey)
	handle("GET", "/keys", policy{keyReads, "list-keys", opRead}, with(read, s.listKeys)...)
	handle("GET", "/keys/:id", policy{keyReads, "get-key", opRead}, with(read, s.getKey)...)
	handle("GET", "/keys/:id/versions", policy{keyReads, "list-key-versions", opRead}, with(read, s.keyVersions)...)
	handle("PATCH", "/keys/:id", policy{keyAdmins, "update-key", opChange}, with(change, s.updateKey)...)
	handle("POST", "/keys/:id/enable", policy{keyAdmins, "enable-key", opChange}, with(change, s.lifecycle(s.keys.EnableKey))...)
	handle("POST", "/keys/:id/disable", policy{keyAdmins, "disable-key", opChange}, with(change, s.lifecycle(s.keys.DisableKey))...)
	handle("POST", "/keys/:id/protect", policy{keyAdmins, "protect-key", opChange}, with(change, s.lifecycle(s.keys.ProtectKey))...)
	handle("POST", "/keys/:id/unprotect", policy{keyAdmins, "unprotect-key", opChange}, with(change, s.lifecycle(s.keys.UnprotectKey))...)
	handle("POST", "/keys/:id/cancel-deletion", policy{keyAdmins, "cancel-key-deletion", opChange}, with(change, s.lifecycle(s.keys.CancelDeletion))...)
	handle("POST", "/keys/:id/rotate", policy{keyAdmins, "rotate-key", opChange}, with(change, s.rotateKey)...)
	handle("POST", "/keys/:id/schedule-deletion", policy{keyAdmins, "schedule-key-deletion", opChange}, with(change, s.scheduleDeletion)...)
	handle("POST", "/keys/:id/replicas", policy{keyAdmins, "add-replica", opChange}, with(change, s.addReplica)...)
	handle("DELETE", "/keys/:id/replicas/:zone", policy{keyAdmins, "remove-replica", opChange}, with(change, s.removeReplica)...)
	handle("POST", "/keys/:id/update-primary", policy{keyAdmins, "update-primary", opChange}, with(change, s.updatePrimary)...)
	handle("GET", "/keys/:id/import-parameters", policy{keyAdmins, "get-import-parameters", opChange}, with(change, s.importParameters)...)
	handle("POST", "/keys/:id/import", policy{keyAdmins, "import-key-material", opChange}, with(change, s.importKeyMaterial)...)

	handle("POST", "/keys/:id/encrypt", policy{cryptoers, "encrypt", opCrypto}, with(read, s.encrypt)...)
	handle("POST", "/keys/:id/decrypt", policy{cryptoers, "decrypt", opCrypto}, with(read, s.decrypt)...)
	handle("POST", "/keys/:id/generate-data-key", policy{cryptoers, "generate-data-key", opCrypto}, with(read, s.generateDataKey)...)
	handle("POST", "/keys/:id/re-encrypt", policy{cryptoers, "re-encrypt", opCrypto}, with(read, s.reEncrypt)...)
	handle("POST", "/decrypt", policy{cryptoers, "decrypt", opCrypto}, with(read, s.decrypt)...)
	handle("POST", "/re-encrypt", policy{cryptoers, "re-encrypt", opCrypto}, with(read, s.reEncrypt)...)

	if cfg.Internal != nil {
		// Node-to-node routes authenticate with the nodes' own peer
		// token, which API callers never hold; the handler checks it.
		v1.Any("/internal/*path", gin.WrapH(cfg.Internal))
	}
	return e, s, nil
}

// recoverPanic turns a panic below it into a 500 with the generic
// message; the panic and its stack go to the log only.
func (s *server) recoverPanic(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler { // net/http's way to abort a response: let it through
			panic(p)
		}
		s.logger.Error("panic serving request", "method", c.Request.Method, "route", route(c),
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		writeError(c, internalRule.status, internalRule.code, internalRule.message)
	}()
	c.Next()
}

// logRequest logs one Debug line per request: never bodies, headers or
// query strings, only the route pattern.
func (s *server) logRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.logger.Debug("request", "method", c.Request.Method, "route", route(c),
		"status", c.Writer.Status(), "duration", time.Since(start))
}

// route is the matched route pattern, or a placeholder for unknown paths
// (whose raw text is not logged).
func route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}
