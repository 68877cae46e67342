package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
	"github.com/spf13/cobra"
)

type serverFlags struct {
	nodeID, zone, dataDir                      string
	apiAddr, apiAdvertise                      string
	raftAddr, raftAdvertise                    string
	gossipAddr, gossipAdvertise, gossipProfile string
	join                                       []string
	bootstrapExpect                            int
	rootKeyFile                                string
	operatorToken, operatorTokenFile           string
	oldRootToken, oldRootTokenFile             string
	homeZone                                   string
	orgKeyQuota, orgRateBurst                  int
	orgRateLimit                               float64
	logLevel                                   string
	logJSON                                    bool
	maxPayload                                 int
	minDeletion, maxDeletion, defaultDeletion  time.Duration
	minRotation                                time.Duration
	snapshotThreshold, trailingLogs            uint64
	snapshotInterval                           time.Duration
	auditLog                                   []string
	replicationLagThreshold                    time.Duration
	allowRawImport                             bool
	importTokenTTL                             time.Duration
	tlsCertFile, tlsKeyFile, tlsCAFile         string
}

func newServerCommand() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Keyzone node (flags may also be set as KEYZONE_<FLAG>)",
		Long: `Run a Keyzone node: an API server, a Raft voter of its zone and a gossip member.

Every flag can also be set in the environment as KEYZONE_<FLAG> (upper case,
dashes as underscores), e.g. KEYZONE_NODE_ID. The root key is read from
--root-key-file or KEYZONE_ROOT_KEY (base64 of 32 bytes); it is never stored.

The operator token (--operator-token-file, KEYZONE_OPERATOR_TOKEN) manages
organizations, their tokens and the cluster, and uses no organization's
keys; every node of every zone is given the same one. Organizations and
tokens are written in the home zone (--home-zone, the same on every node of
the deployment) and replicated to every zone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return runServer(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nodeID, "node-id", "", "unique id of this node (required; a replaced node needs a new id)")
	fl.StringVar(&f.zone, "zone", "zone-a", "zone this node belongs to")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log, snapshots and node identity (required)")
	fl.StringVar(&f.apiAddr, "api-addr", "127.0.0.1:8200", "host:port the HTTP API listens on")
	fl.StringVar(&f.apiAdvertise, "api-advertise", "", "base URL other nodes reach the API on (default http://<api-addr>, https:// with --tls-cert-file)")
	fl.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:8300", "host:port Raft listens on")
	fl.StringVar(&f.raftAdvertise, "raft-advertise", "", "host:port other nodes reach Raft on (default: the bound address)")
	fl.StringVar(&f.gossipAddr, "gossip-addr", "127.0.0.1:8400", "host:port the gossip pool listens on (TCP and UDP)")
	fl.StringVar(&f.gossipAdvertise, "gossip-advertise", "", "host:port other nodes reach gossip on (default: the bound address)")
	fl.StringVar(&f.gossipProfile, "gossip-profile", "lan", "gossip timings: lan, or local for loopback")
	fl.StringSliceVar(&f.join, "join", nil, "gossip addresses of nodes to join (repeatable or comma-separated)")
	fl.IntVar(&f.bootstrapExpect, "bootstrap-expect", 3, "voters the zone starts with; 0 waits to be added by a leader")
	fl.StringVar(&f.rootKeyFile, "root-key-file", "", "file holding the root key, base64 of 32 bytes (or set KEYZONE_ROOT_KEY)")
	fl.StringVar(&f.operatorToken, "operator-token", "", "the cluster operator's bearer token (prefer --operator-token-file or KEYZONE_OPERATOR_TOKEN)")
	fl.StringVar(&f.operatorTokenFile, "operator-token-file", "", "file holding the cluster operator's bearer token")
	// The single root token became the operator token: the old names are
	// refused with a message rather than ignored.
	fl.StringVar(&f.oldRootToken, "root-token", "", "renamed --operator-token")
	fl.StringVar(&f.oldRootTokenFile, "root-token-file", "", "renamed --operator-token-file")
	_ = fl.MarkHidden("root-token")
	_ = fl.MarkHidden("root-token-file")
	fl.StringVar(&f.homeZone, "home-zone", "", "zone where organizations and tokens are written (default: this node's --zone); every node of the deployment must name the same")
	fl.IntVar(&f.orgKeyQuota, "org-key-quota", defaultOrgKeyQuota, "keys an organization may hold per zone, unless its own quota says otherwise")
	fl.Float64Var(&f.orgRateLimit, "org-rate-limit", defaultOrgRateLimit, "requests/s per node per organization, unless its own limit says otherwise (negative: no limit)")
	fl.IntVar(&f.orgRateBurst, "org-rate-burst", defaultOrgRateBurst, "burst of the per-organization rate limit")
	fl.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log as JSON lines")
	d := keys.DefaultConfig()
	fl.IntVar(&f.maxPayload, "max-payload", d.MaxPayload, "largest plaintext accepted, in bytes")
	fl.DurationVar(&f.minDeletion, "min-deletion-window", d.MinDeletionWindow, "shortest pending window of schedule-deletion")
	fl.DurationVar(&f.maxDeletion, "max-deletion-window", d.MaxDeletionWindow, "longest pending window of schedule-deletion")
	fl.DurationVar(&f.defaultDeletion, "default-deletion-window", d.DefaultDeletionWindow, "pending window when a request gives none")
	fl.DurationVar(&f.minRotation, "min-rotation-period", d.MinRotationPeriod, "shortest automatic rotation period")
	fl.DurationVar(&f.importTokenTTL, "import-token-ttl", keys.DefaultImportTokenTTL, "how long the import parameters of a key of origin external stay usable")
	fl.BoolVar(&f.allowRawImport, "allow-raw-import", false, "accept unsealed key material on import (keyzone key import --raw), over TLS only: needs --tls-cert-file")
	fl.StringVar(&f.tlsCertFile, "tls-cert-file", "", "PEM certificate (and chain) of the API: with --tls-key-file, the API serves https only (reloaded on SIGHUP)")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fl.StringVar(&f.tlsCAFile, "tls-ca-file", "", "PEM bundle of the CAs trusted for other nodes' API certificates (default: the system's)")
	c := cluster.DefaultConfig()
	fl.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", c.SnapshotThreshold, "log entries between Raft snapshots")
	fl.DurationVar(&f.snapshotInterval, "snapshot-interval", c.SnapshotInterval, "how often Raft checks whether to snapshot")
	fl.Uint64Var(&f.trailingLogs, "trailing-logs", c.TrailingLogs, "log entries kept after a snapshot")
	fl.StringSliceVar(&f.auditLog, "audit-log", nil, `append one JSON line per request to this file, or "-" for stdout; repeat (or comma-separate) for several: a record counts as written when one takes it (default: the node's log, as logger "audit")`)
	fl.DurationVar(&f.replicationLagThreshold, "replication-lag-threshold", c.ReplicationLagThreshold,
		"GET /v1/health says degraded when a remote zone has not acknowledged a change of this zone for longer")
	return cmd
}

func runServer(ctx context.Context, f serverFlags) error {
	logger, err := newLogger(f.logLevel, f.logJSON)
	if err != nil {
		return err
	}
	rek, err := loadRootKey(f.rootKeyFile)
	if err != nil {
		return err
	}
	if f.oldRootToken != "" || f.oldRootTokenFile != "" {
		return errors.New("--root-token and --root-token-file (KEYZONE_ROOT_TOKEN, KEYZONE_ROOT_TOKEN_FILE) were renamed --operator-token and --operator-token-file (KEYZONE_OPERATOR_TOKEN, KEYZONE_OPERATOR_TOKEN_FILE)")
	}
	token, err := loadOperatorToken(f.operatorToken, f.operatorTokenFile)
	if err != nil {
		return err
	}
	if f.orgKeyQuota < 1 || f.orgRateBurst < 1 {
		return fmt.Errorf("--org-key-quota %d and --org-rate-burst %d: want positive numbers", f.orgKeyQuota, f.orgRateBurst)
	}
	if f.nodeID == "" || f.dataDir == "" {
		return errors.New("--node-id and --data-dir are required")
	}
	if f.replicationLagThreshold <= 0 {
		return fmt.Errorf("--replication-lag-threshold %s: want a positive duration", f.replicationLagThreshold)
	}
	tc, err := loadServerTLS(f.tlsCertFile, f.tlsKeyFile, f.tlsCAFile)
	if err != nil {
		return err
	}
	if f.allowRawImport && tc.api == nil {
		logger.Warn("--allow-raw-import has no effect without --tls-cert-file: raw imports are accepted over TLS only")
	}
	var sink audit.Sink
	if len(f.auditLog) > 0 {
		var sinks audit.Multi
		for _, path := range f.auditLog {
			js, err := audit.Open(path)
			if err != nil {
				return err
			}
			defer js.Close()
			sinks = append(sinks, js)
		}
		sink = sinks
		if len(sinks) == 1 {
			sink = sinks[0]
		}
	}
	cfg := server.Config{
		Cluster: cluster.Config{
			NodeID: f.nodeID, Zone: f.zone, DataDir: f.dataDir,
			RaftBind: f.raftAddr, RaftAdvertise: f.raftAdvertise,
			GossipBind: f.gossipAddr, GossipAdvertise: f.gossipAdvertise, GossipProfile: f.gossipProfile,
			Join: f.join, BootstrapExpect: f.bootstrapExpect,
			SnapshotThreshold: f.snapshotThreshold, SnapshotInterval: f.snapshotInterval, TrailingLogs: f.trailingLogs,
			ReplicationLagThreshold: f.replicationLagThreshold,
		},
		Keys: keys.Config{
			REK: rek, MaxPayload: f.maxPayload,
			MinDeletionWindow: f.minDeletion, MaxDeletionWindow: f.maxDeletion, DefaultDeletionWindow: f.defaultDeletion,
			MinRotationPeriod: f.minRotation,
			AllowRawImport:    f.allowRawImport, ImportTokenTTL: f.importTokenTTL,
		},
		APIBind:       f.apiAddr,
		APIAdvertise:  f.apiAdvertise,
		TLS:           tc.api,
		PeerTLS:       tc.peer,
		OperatorToken: token,
		HomeZone:      f.homeZone,
		OrgKeyQuota:   f.orgKeyQuota,
		OrgRateLimit:  f.orgRateLimit,
		OrgRateBurst:  f.orgRateBurst,
		Audit:         sink,
		Logger:        logger,
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	if tc.cert != nil {
		logger.Info("api serves tls", "certificate", f.tlsCertFile, "not_after", tc.cert.expiry().UTC())
		hctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			reloadOnHUP(hctx, tc.cert, logger)
		}()
		defer func() { stop(); <-done }()
	}
	waitForSignal(ctx)
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func waitForSignal(ctx context.Context) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}

// loadRootKey reads the REK from a file, else from KEYZONE_ROOT_KEY.
func loadRootKey(file string) (*kzcrypto.REK, error) {
	var b64 string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("root key: %w", err)
		}
		b64 = string(b)
	case os.Getenv("KEYZONE_ROOT_KEY") != "":
		b64 = os.Getenv("KEYZONE_ROOT_KEY")
	default:
		return nil, errors.New("root key: give --root-key-file or KEYZONE_ROOT_KEY (base64 of 32 random bytes, e.g. `head -c32 /dev/urandom | base64`)")
	}
	rek, err := kzcrypto.ParseREK(b64)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	return rek, nil
}

// Defaults of the per-organization limits (server flags).
const (
	defaultOrgKeyQuota  = 1000
	defaultOrgRateLimit = 10000
	defaultOrgRateBurst = 20000
)

func loadOperatorToken(token, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("operator token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if len(token) < 16 {
		return "", errors.New("operator token: give --operator-token-file, --operator-token or KEYZONE_OPERATOR_TOKEN, at least 16 characters")
	}
	return token, nil
}
