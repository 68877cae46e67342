package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/audit"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
	"github.com/spf13/cobra"
)

type devFlags struct {
	zones    int
	nodes    int
	apiPort  int
	envFile  string
	dataDir  string
	logLevel string
	// rootKeyFile keeps the root key across dev runs, so that a snapshot
	// of one run can be restored into the next.
	rootKeyFile string
	// tls serves every API over https with a throwaway CA, and accepts
	// raw imports.
	tls bool
}

// devZoneStride is how far apart the API ports of two dev zones start:
// with --api-port 8200, zone-a takes 8200-8202, zone-b 8210-8212, ...
const devZoneStride = 10

// devPullerScan is how often a zone leader's replicator looks for zones
// it does not pull from yet (zone.Config.ScanInterval's default).
const devPullerScan = time.Second

func newDevCommand() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run throwaway zones of three nodes each in this process, on loopback",
		Long: `Run a throwaway Keyzone deployment in one process: --zones zones (zone-a,
zone-b, ...) of --nodes nodes each on 127.0.0.1, with temporary data dirs, one
random root key, one random operator token and one gossip pool, all gone on
Ctrl-C. zone-a is the home zone, where organizations and tokens are written.

With --api-port P, zone number i (from 0) takes the API ports P+10*i,
P+10*i+1, ...: zone-a 8200-8202, zone-b 8210-8212, zone-c 8220-8222.

Once every node is ready and sees every zone, it creates the organization
"demo" with an org-admin and a crypto-user token, waits until both tokens
work on every node of every zone, and prints the addresses and the tokens.
Each node writes its audit log to <data dir>/audit/<node id>.log. With
--env-file it then also writes
  KEYZONE_ADDR=<zone-a's first node>
  KEYZONE_TOKEN=<the demo organization's org-admin token>
  KEYZONE_OPERATOR_TOKEN=<the operator token: organizations and the cluster>
  KEYZONE_CRYPTO_TOKEN=<the demo organization's crypto-user token>
  KEYZONE_AUDIT_DIR=<the directory of the nodes' audit logs>
  KEYZONE_ADDR_ZONE_A=..., KEYZONE_ADDR_ZONE_B=..., ... (each zone's first node)
  KEYZONE_ROOT_KEY_FILE=<FILE.root-key>
  KEYZONE_HOME_ZONE=zone-a
  KEYZONE_JOIN_ZONE_A=..., KEYZONE_JOIN_ZONE_B=..., ... (each zone's gossip addresses)
for the CLI (set -a; . FILE; set +a), and the root key (base64, mode 0600)
in FILE.root-key, so that a separate ` + "`keyzone server`" + ` can join a dev zone, e.g.
to replace a node (it takes the operator token and the home zone from the
same variables). It removes both files on exit.

With --tls it makes a throwaway CA and one certificate per node (ECDSA P-256,
for 127.0.0.1 and localhost, valid 3 days) in <data dir>/tls (ca.pem,
<node id>.pem, <node id>-key.pem; the CA's key is never written), and every
node serves its API over https only, trusts that CA for the other nodes and
accepts raw key imports (--allow-raw-import). The addresses are then https
ones, and the env file also names the CA:
  KEYZONE_CA_FILE=<data dir>/tls/ca.pem
which the CLI (--ca-file) and client/tinkkms read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return runDev(cmd.Context(), f)
		},
	}
	cmd.Flags().IntVar(&f.zones, "zones", 2, "zones to run (1 to 9), named zone-a, zone-b, ...")
	cmd.Flags().IntVar(&f.nodes, "nodes", 3, "nodes per zone (1 to 9)")
	cmd.Flags().IntVar(&f.apiPort, "api-port", 8200, "API port of zone-a's first node; node j of zone i takes port+10*i+j (0: any free ports)")
	cmd.Flags().StringVar(&f.envFile, "env-file", "", "write KEYZONE_ADDR, the tokens and KEYZONE_ADDR_<ZONE> lines to this file")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "keep data here instead of a temporary directory removed on exit")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "error", "trace, debug, info, warn or error")
	// Not --root-key-file: the env file sets KEYZONE_ROOT_KEY_FILE for
	// `keyzone server`, which would then feed this flag on the next run.
	cmd.Flags().BoolVar(&f.tls, "tls", false, "serve the APIs over https with a throwaway CA (KEYZONE_CA_FILE in the env file) and accept raw key imports")
	cmd.Flags().StringVar(&f.rootKeyFile, "keep-root-key", "", "use the root key in this file, or create it (mode 0600) with a new one: a later run with the same file can restore this run's snapshots")
	cmd.AddCommand(newLagBenchCommand())
	return cmd
}

// devZone is one running dev zone.
type devZone struct {
	name    string
	servers []*server.Server
	audits  []*audit.JSONSink
}

// devZoneName names the i-th dev zone (from 0): zone-a, zone-b, ...
func devZoneName(i int) string { return "zone-" + string(rune('a'+i)) }

func (f devFlags) validate() error {
	if f.zones < 1 || f.zones > 9 {
		return errors.New("--zones must be between 1 and 9")
	}
	if f.nodes < 1 || f.nodes > 9 {
		return errors.New("--nodes must be between 1 and 9")
	}
	if f.apiPort != 0 {
		last := f.apiPort + (f.zones-1)*devZoneStride + f.nodes - 1
		if f.apiPort < 1 || last > 65535 {
			return fmt.Errorf("--api-port %d: the ports %d-%d must lie within 1-65535 (or give 0 for any free ports)", f.apiPort, f.apiPort, last)
		}
	}
	return nil
}

func runDev(parent context.Context, f devFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	if parent == nil {
		parent = context.Background()
	}
	// Ctrl-C from here on, also while the zones start, ends in the
	// clean-up below rather than killing the process.
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger, err := newLogger(f.logLevel, false)
	if err != nil {
		return err
	}
	dir := f.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "keyzone-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if f.envFile != "" && f.rootKeyFile != "" && filepath.Clean(f.rootKeyFile) == filepath.Clean(devKeyFile(f.envFile)) {
		return fmt.Errorf("--keep-root-key %s: that is where --env-file writes its own copy of the key, removed on exit; keep the root key in another file", f.rootKeyFile)
	}
	if f.envFile != "" {
		// A file left by a killed run must not pass for this one's.
		for _, old := range []string{f.envFile, devKeyFile(f.envFile)} {
			if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove old env file: %w", err)
			}
		}
	}
	rek, rekB64, operator, err := devSecrets()
	if err != nil {
		return err
	}
	if f.rootKeyFile != "" {
		if rek, rekB64, err = devRootKey(f.rootKeyFile, rekB64); err != nil {
			return err
		}
	}
	var pki *devPKI
	var copts []client.Option
	if f.tls {
		if pki, err = newDevPKI(filepath.Join(dir, "tls")); err != nil {
			return err
		}
		if pki.caFile, err = filepath.Abs(pki.caFile); err != nil {
			return err
		}
		copts = append(copts, client.WithCAFile(pki.caFile))
	}
	auditDir := filepath.Join(dir, "audit")
	zones, err := startDevZones(f, dir, auditDir, rek, operator, pki, logger)
	defer func() {
		if hclog.LevelFromString(f.logLevel) >= hclog.Error {
			// Nodes going away one by one is no news: a leader that still
			// runs logs errors for each follower it can no longer reach.
			logger.SetLevel(hclog.Off)
		}
		if err := stopDevZones(zones); err != nil {
			fmt.Fprintln(os.Stderr, "stopping:", err)
		}
	}()
	if err != nil {
		return err
	}
	if err := waitDevReady(ctx, zones, f.zones*f.nodes); err != nil {
		if ctx.Err() != nil && parent.Err() == nil {
			fmt.Println("\nstopping")
			return nil // Ctrl-C while starting
		}
		return err
	}
	demo, err := devDemo(ctx, zones, operator, copts...)
	if err != nil {
		if ctx.Err() != nil && parent.Err() == nil {
			fmt.Println("\nstopping")
			return nil // Ctrl-C while starting
		}
		return err
	}
	if auditDir, err = filepath.Abs(auditDir); err != nil {
		return err
	}
	env := devEnv(zones, demo, operator, auditDir)
	if pki != nil {
		env = append(env, envCAFile+"="+pki.caFile)
	}
	if f.envFile != "" {
		keyFile, err := filepath.Abs(devKeyFile(f.envFile))
		if err != nil {
			return err
		}
		// Written before the env file that names it, and removed after it.
		if err := writeEnvFile(keyFile, []string{rekB64}); err != nil {
			return fmt.Errorf("write root key file: %w", err)
		}
		defer os.Remove(keyFile)
		env = append(env, devJoinEnv(zones, keyFile)...)
		if err := writeEnvFile(f.envFile, env); err != nil {
			return err
		}
		defer os.Remove(f.envFile)
	}
	plural := func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	fmt.Printf("Keyzone dev is up: %s of %s, one gossip pool, on 127.0.0.1.\n", plural(len(zones), "zone"), plural(f.nodes, "node"))
	for _, z := range zones {
		fmt.Printf("\n  %s\n", z.name)
		for _, s := range z.servers {
			fmt.Printf("    node %-4s %s\n", s.Node().ID(), s.APIAddress())
		}
	}
	fmt.Printf("\n  organization %s (id %s): org-admin token in KEYZONE_TOKEN, crypto-user token in KEYZONE_CRYPTO_TOKEN;\n", demo.org.Name, demo.org.ID)
	fmt.Printf("  the operator token (organizations and the cluster) in KEYZONE_OPERATOR_TOKEN\n")
	fmt.Printf("  audit logs: %s\n", filepath.Join(auditDir, "<node id>.log"))
	fmt.Println()
	for _, kv := range env {
		fmt.Printf("  export %s\n", kv)
	}
	if f.envFile != "" {
		fmt.Printf("\n(also written to %s: set -a; . %s; set +a)\n", f.envFile, f.envFile)
	}
	if f.dataDir != "" {
		fmt.Printf("\nPress Ctrl-C to stop; the data stays in %s.\n", f.dataDir)
	} else {
		fmt.Println("\nPress Ctrl-C to stop; all data is discarded.")
	}
	<-ctx.Done()
	fmt.Println("\nstopping")
	return nil
}

// devSecrets returns a fresh root key, in base64 too (for the key file
// of --env-file), and an operator token.
func devSecrets() (rek *kzcrypto.REK, rekB64, token string, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", "", err
	}
	defer clear(raw)
	rek, err = kzcrypto.NewREK(raw)
	if err != nil {
		return nil, "", "", err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, "", "", err
	}
	return rek, base64.StdEncoding.EncodeToString(raw), "kz_dev_operator_" + hex.EncodeToString(tok), nil
}

// devRootKey returns the root key kept in file, or keeps fresh (base64)
// there when the file does not exist yet.
func devRootKey(file, fresh string) (*kzcrypto.REK, string, error) {
	rek, err := loadRootKey(file)
	if err == nil {
		b, _ := os.ReadFile(file)
		return rek, strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	if err := os.WriteFile(file, []byte(fresh+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("root key: %w", err)
	}
	rek, err = kzcrypto.ParseREK(fresh)
	return rek, fresh, err
}

// devKeyFile is where --env-file puts the root key: beside the env file.
func devKeyFile(envFile string) string { return envFile + ".root-key" }

// devJoinEnv returns what a separate `keyzone server` needs to join a dev
// zone besides the operator token (KEYZONE_OPERATOR_TOKEN, in devEnv): the
// root key file (KEYZONE_ROOT_KEY_FILE, which the server reads as
// --root-key-file), the home zone (KEYZONE_HOME_ZONE, --home-zone) and, per
// zone, its nodes' gossip addresses (KEYZONE_JOIN_<ZONE>, for --join).
func devJoinEnv(zones []*devZone, keyFile string) []string {
	env := []string{"KEYZONE_ROOT_KEY_FILE=" + keyFile, "KEYZONE_HOME_ZONE=" + zones[0].name}
	for _, z := range zones {
		var addrs []string
		for _, s := range z.servers {
			addrs = append(addrs, s.Node().GossipAddress())
		}
		env = append(env, fmt.Sprintf("KEYZONE_JOIN_%s=%s", envZone(z.name), strings.Join(addrs, ",")))
	}
	return env
}

// startDevZones starts every node of every zone without waiting for
// leaders: all share the root key, the operator token, the home zone (the
// first zone) and one gossip pool, which every node joins through zone-a's
// first node; each zone bootstraps itself once its nodes see each other.
// Each node writes its audit log to auditDir/<node id>.log, started anew.
// With pki, every node serves https with a certificate of its own, trusts
// pki's CA for the others and accepts raw imports.
// What it started is returned also on error, for stopDevZones.
func startDevZones(f devFlags, dir, auditDir string, rek *kzcrypto.REK, operator string, pki *devPKI, logger hclog.Logger) ([]*devZone, error) {
	var zones []*devZone
	var join []string
	if err := os.MkdirAll(auditDir, 0o700); err != nil {
		return nil, fmt.Errorf("audit logs: %w", err)
	}
	for zi := range f.zones {
		z := &devZone{name: devZoneName(zi)}
		zones = append(zones, z)
		for ni := range f.nodes {
			id := fmt.Sprintf("%c%d", 'a'+zi, ni+1)
			apiBind := "127.0.0.1:0"
			if f.apiPort != 0 {
				apiBind = net.JoinHostPort("127.0.0.1", strconv.Itoa(f.apiPort+zi*devZoneStride+ni))
			}
			cc := cluster.DefaultConfig()
			cc.NodeID, cc.Zone = id, z.name
			cc.DataDir = filepath.Join(dir, z.name, id)
			cc.RaftBind, cc.GossipBind = "127.0.0.1:0", "127.0.0.1:0"
			cc.GossipProfile = "local"
			cc.Join = join
			cc.BootstrapExpect = f.nodes
			auditFile := filepath.Join(auditDir, id+".log")
			if err := os.Remove(auditFile); err != nil && !errors.Is(err, os.ErrNotExist) {
				return zones, fmt.Errorf("audit log of %s: %w", id, err)
			}
			sink, err := audit.Open(auditFile)
			if err != nil {
				return zones, fmt.Errorf("audit log of %s: %w", id, err)
			}
			z.audits = append(z.audits, sink)
			cfg := server.Config{
				Cluster:       cc,
				Keys:          keys.Config{REK: rek},
				APIBind:       apiBind,
				OperatorToken: operator,
				HomeZone:      zones[0].name,
				Audit:         sink,
				Logger:        logger.Named(id),
			}
			if pki != nil {
				cert, err := pki.nodeCert(filepath.Dir(pki.caFile), id)
				if err != nil {
					return zones, err
				}
				cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
				cfg.PeerTLS = &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
				cfg.Keys.AllowRawImport = true
			}
			s, err := server.Start(cfg)
			if err != nil {
				return zones, fmt.Errorf("start %s of %s: %w", id, z.name, err)
			}
			z.servers = append(z.servers, s)
			if join == nil {
				join = []string{s.Node().GossipAddress()}
			}
		}
	}
	return zones, nil
}

// stopDevZones shuts every node down, all at once.
func stopDevZones(zones []*devZone) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, z := range zones {
		for _, s := range z.servers {
			wg.Go(func() {
				if err := s.Shutdown(ctx); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", s.Node().ID(), err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for _, z := range zones {
		for _, a := range z.audits {
			if err := a.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// waitDevReady waits until every node is ready (knows a leader of its
// zone), sees all total nodes of the pool, and its zone's leader pulls
// from every other zone.
func waitDevReady(ctx context.Context, zones []*devZone, total int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var names []string
	for _, z := range zones {
		names = append(names, z.name)
	}
	// A leader starts pulling from the zones its pool shows when it is
	// elected, and from those that appear later on its next scan. So once
	// every node sees every zone, a leader elected before that may still
	// need up to a scan interval to pull from all of them.
	var pullersBy time.Time
	for {
		complete, leaders := true, false
		for _, z := range zones {
			for _, s := range z.servers {
				if !devSeesAll(s, names, total) {
					complete = false
				}
				if s.Node().IsLeader() {
					leaders = true
				}
			}
		}
		if complete && pullersBy.IsZero() {
			pullersBy = time.Now()
			if leaders {
				pullersBy = pullersBy.Add(devPullerScan + 100*time.Millisecond)
			}
		}
		if !complete {
			pullersBy = time.Time{} // a node dropped out: start over
		}
		ready := complete && !time.Now().Before(pullersBy)
		for _, z := range zones {
			for _, s := range z.servers {
				if ready && !s.Node().Health(ctx).Ready {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return errors.New("the dev zones did not all elect a leader and see each other within 60s")
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func devSeesAll(s *server.Server, zones []string, total int) bool {
	members := s.Node().Members()
	if len(members) != total {
		return false
	}
	var seen []string
	for _, m := range members {
		if !slices.Contains(seen, m.Zone) {
			seen = append(seen, m.Zone)
		}
	}
	return len(seen) == len(zones)
}

// devEnv returns the KEY=value lines of the env file: KEYZONE_ADDR (zone-a),
// KEYZONE_TOKEN (the demo organization's org-admin), KEYZONE_OPERATOR_TOKEN,
// KEYZONE_CRYPTO_TOKEN (the demo organization's crypto-user),
// KEYZONE_AUDIT_DIR, then KEYZONE_ADDR_<ZONE> per zone.
func devEnv(zones []*devZone, demo devTenant, operator, auditDir string) []string {
	env := []string{
		"KEYZONE_ADDR=" + zones[0].servers[0].APIAddress(),
		"KEYZONE_TOKEN=" + demo.admin.Secret,
		"KEYZONE_OPERATOR_TOKEN=" + operator,
		"KEYZONE_CRYPTO_TOKEN=" + demo.crypto.Secret,
		"KEYZONE_AUDIT_DIR=" + auditDir,
	}
	for _, z := range zones {
		env = append(env, fmt.Sprintf("KEYZONE_ADDR_%s=%s", envZone(z.name), z.servers[0].APIAddress()))
	}
	return env
}

// writeEnvFile writes the lines at once (through a rename), so that a
// script waiting for the file never reads half of it.
func writeEnvFile(path string, env []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write env file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write env file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write env file: %w", err)
	}
	return nil
}

func envZone(zone string) string {
	return strings.ToUpper(strings.ReplaceAll(zone, "-", "_"))
}
