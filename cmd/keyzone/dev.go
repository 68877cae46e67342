package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
	"github.com/spf13/cobra"
)

type devFlags struct {
	nodes    int
	zone     string
	apiPort  int
	envFile  string
	dataDir  string
	logLevel string
}

func newDevCommand() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a throwaway zone of three nodes in this process, on loopback",
		Long: `Run a throwaway Keyzone zone in one process: three nodes on 127.0.0.1 with
temporary data dirs, a random root key and a random root token, all gone on
Ctrl-C. It prints the API address and the token; with --env-file it also writes
KEYZONE_ADDR=... and KEYZONE_TOKEN=... lines for the CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return runDev(cmd.Context(), f)
		},
	}
	cmd.Flags().IntVar(&f.nodes, "nodes", 3, "nodes in the zone")
	cmd.Flags().StringVar(&f.zone, "zone", "zone-a", "zone name")
	cmd.Flags().IntVar(&f.apiPort, "api-port", 8200, "API port of the first node; the others take the next ones (0: any free ports)")
	cmd.Flags().StringVar(&f.envFile, "env-file", "", "write KEYZONE_ADDR and KEYZONE_TOKEN lines to this file")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "keep data here instead of a temporary directory removed on exit")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "error", "trace, debug, info, warn or error")
	return cmd
}

func runDev(ctx context.Context, f devFlags) error {
	if f.nodes < 1 || f.nodes > 9 {
		return errors.New("--nodes must be between 1 and 9")
	}
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
	rek, token, err := devSecrets()
	if err != nil {
		return err
	}
	servers, err := startDevZone(f, dir, rek, token, logger)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i].Shutdown(sctx)
		}
	}()
	if err != nil {
		return err
	}
	addr := servers[0].APIAddress()
	if f.envFile != "" {
		env := fmt.Sprintf("KEYZONE_ADDR=%s\nKEYZONE_TOKEN=%s\nKEYZONE_ADDR_%s=%s\n", addr, token, envZone(f.zone), addr)
		if err := os.MkdirAll(filepath.Dir(f.envFile), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(f.envFile, []byte(env), 0o600); err != nil {
			return fmt.Errorf("write env file: %w", err)
		}
		defer os.Remove(f.envFile)
	}
	if err := waitDevLeader(ctx, servers); err != nil {
		return err
	}
	fmt.Printf("Keyzone dev zone %q is up with %d nodes.\n", f.zone, len(servers))
	for _, s := range servers {
		fmt.Printf("  node %-8s %s\n", s.Node().ID(), s.APIAddress())
	}
	fmt.Printf("\n  export KEYZONE_ADDR=%s\n  export KEYZONE_TOKEN=%s\n", addr, token)
	if f.envFile != "" {
		fmt.Printf("\n(also written to %s)\n", f.envFile)
	}
	fmt.Println("\nPress Ctrl-C to stop; all data is discarded.")
	waitForSignal(ctx)
	fmt.Println("\nstopping")
	return nil
}

func devSecrets() (*kzcrypto.REK, string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	rek, err := kzcrypto.NewREK(raw)
	clear(raw)
	if err != nil {
		return nil, "", err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, "", err
	}
	return rek, "kz_dev_" + hex.EncodeToString(tok), nil
}

func startDevZone(f devFlags, dir string, rek *kzcrypto.REK, token string, logger hclog.Logger) ([]*server.Server, error) {
	var servers []*server.Server
	var join []string
	for i := 1; i <= f.nodes; i++ {
		id := fmt.Sprintf("node%d", i)
		apiBind := "127.0.0.1:0"
		if f.apiPort != 0 {
			apiBind = net.JoinHostPort("127.0.0.1", strconv.Itoa(f.apiPort+i-1))
		}
		cc := cluster.DefaultConfig()
		cc.NodeID, cc.Zone = id, f.zone
		cc.DataDir = filepath.Join(dir, id)
		cc.RaftBind, cc.GossipBind = "127.0.0.1:0", "127.0.0.1:0"
		cc.GossipProfile = "local"
		cc.Join = join
		cc.BootstrapExpect = f.nodes
		s, err := server.Start(server.Config{
			Cluster:   cc,
			Keys:      keys.Config{REK: rek},
			APIBind:   apiBind,
			RootToken: token,
			Logger:    logger.Named(id),
		})
		if err != nil {
			return servers, fmt.Errorf("start %s: %w", id, err)
		}
		servers = append(servers, s)
		join = []string{s.Node().GossipAddress()}
	}
	return servers, nil
}

func waitDevLeader(ctx context.Context, servers []*server.Server) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		ready := 0
		for _, s := range servers {
			if s.Node().Health(ctx).Ready {
				ready++
			}
		}
		if ready == len(servers) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the dev zone did not elect a leader within 30s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func envZone(zone string) string {
	return strings.ToUpper(strings.ReplaceAll(zone, "-", "_"))
}
