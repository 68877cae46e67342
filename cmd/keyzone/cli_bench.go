package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/bench"
	"github.com/keyzone/keyzone/client"
)

type benchFlags struct {
	concurrency, writeConcurrency int
	duration, warmup              time.Duration
	rotations                     int
	jsonPath                      string
	addr, token                   string
	pid                           int
	keep                          bool
	only                          []string
}

// newBenchCommand is `keyzone bench`: the load generator of `make bench`.
func newBenchCommand() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency and server CPU per request against the HTTP floor",
		Long: `Measure Keyzone under a closed-loop load: --concurrency workers, each on its own
keep-alive connection, send a request as soon as their last one is answered; a
--warmup runs first and is not counted, then --duration is measured. Every row
gives req/s, p50, p99, max, errors and the server's CPU time per request (user +
system, from /proc/<pid>/stat of the server process over the measured window).

It starts, as child processes of this one (so their CPU is theirs alone):
  - a floor server: the API's own gin engine and middleware with a no-op JSON
    handler and a handler that decodes a JSON body and sends it back;
  - a zone of three ` + "`keyzone server`" + ` processes on loopback, fsync on;
  - then ` + "`keyzone dev --zones 3`" + ` for the rotation lag between zones.
Crypto loads run against a follower and the leader; key creation and rotation
against the leader with --write-concurrency clients (CPU: the three nodes).
Every crypto row is also given as a ratio to the floor measured in the same run.

With KEYZONE_ADDR (or --addr) it measures that node instead of starting a zone
(CPU only with --pid), still against a floor server of its own.

The table goes to stdout, and with --json the same figures as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			// Ctrl-C stops the children before the bench exits.
			ctx, stop := signal.NotifyContext(cliContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.concurrency, "concurrency", bench.DefaultConcurrency, "workers (connections) of the crypto loads")
	fl.IntVar(&f.writeConcurrency, "write-concurrency", 64, "clients creating and rotating keys")
	fl.DurationVar(&f.duration, "duration", bench.DefaultDuration, "measured window of each load")
	fl.DurationVar(&f.warmup, "warmup", bench.DefaultWarmup, "load before each window, not counted")
	fl.IntVar(&f.rotations, "rotations", 100, "rotations of the cross-zone lag measurement (0 skips it)")
	fl.StringVar(&f.jsonPath, "json", "", "also write the results as JSON to this file")
	fl.StringVar(&f.addr, "addr", "", "measure the node at this address instead of starting a zone")
	fl.StringVar(&f.token, "token", "", "API token of --addr")
	fl.IntVar(&f.pid, "pid", 0, "process id of the node at --addr, for its CPU time")
	fl.BoolVar(&f.keep, "keep", false, "keep the children's data and logs (the directory is printed)")
	fl.StringSliceVar(&f.only, "only", nil, "run only these parts: "+strings.Join(bench.Parts, ", ")+" (default: all)")
	cmd.AddCommand(newFloorServerCommand(), newBenchScaleCommand())
	return cmd
}

func runBench(ctx context.Context, out, progress io.Writer, f benchFlags) error {
	if f.addr != "" && f.token == "" {
		return errors.New("--addr needs --token (or KEYZONE_TOKEN)")
	}
	for _, p := range f.only {
		if !slices.Contains(bench.Parts, p) {
			return fmt.Errorf("--only: unknown part %q (want %s)", p, strings.Join(bench.Parts, ", "))
		}
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := bench.TempDir()
	if err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintln(progress, "children's data and logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	s := &bench.Suite{
		Binary: bin, Dir: dir,
		Addr: f.addr, Token: f.token, PID: f.pid,
		Load:             bench.Config{Concurrency: f.concurrency, Duration: f.duration, Warmup: f.warmup},
		WriteConcurrency: f.writeConcurrency,
		Only:             f.only,
		Rotations:        f.rotations,
		Progress:         progress,
		Lag: func(ctx context.Context, env string, rotations int) ([]bench.Lag, error) {
			return runLagBench(ctx, progress, lagBenchFlags{
				envFile: env, wait: time.Minute, primary: "zone-a", rotations: rotations,
				poll: time.Millisecond, timeout: 30 * time.Second,
			})
		},
	}
	if f.addr != "" {
		s.Rotations = 0 // needs a dev deployment of its own
	}
	rep, err := s.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	if err := rep.WriteTable(out); err != nil {
		return err
	}
	if f.jsonPath != "" {
		if err := rep.WriteJSON(f.jsonPath); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nresults written to %s\n", f.jsonPath)
	}
	return nil
}

// newFloorServerCommand is the hidden `keyzone bench floor-server`, the
// floor `keyzone bench` starts as a child process.
func newFloorServerCommand() *cobra.Command {
	var addr, token string
	cmd := &cobra.Command{
		Use:    "floor-server",
		Hidden: true,
		Short:  "Serve the API's gin engine and middleware with no-op handlers (the bench's floor)",
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv("KEYZONE_ROOT_TOKEN")
			}
			if token == "" {
				return errors.New("give KEYZONE_ROOT_TOKEN")
			}
			h, err := bench.NewFloorRouter(token, nil)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				waitForSignal(cliContext(cmd))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			fmt.Fprintf(cmd.OutOrStdout(), "floor server on http://%s\n", ln.Addr())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "host:port to listen on")
	return cmd
}

type scaleFlags struct {
	keys        int
	concurrency int
	jsonPath    string
	keep        bool
}

// scaleResult is what `keyzone bench scale` measures.
type scaleResult struct {
	Keys           int              `json:"keys"`
	CreateSeconds  float64          `json:"create_seconds"`
	CreatePerSec   float64          `json:"create_per_sec"`
	CreateErrors   int              `json:"create_errors"`
	RSSBytes       map[string]int64 `json:"rss_bytes"`
	SnapshotBytes  map[string]int64 `json:"snapshot_bytes"`
	SnapshotIndex  map[string]int64 `json:"snapshot_index"`
	RestartNode    string           `json:"restart_node"`
	RestartSeconds float64          `json:"restart_seconds"`
}

// newBenchScaleCommand is `keyzone bench scale`, run by `make bench-scale`.
func newBenchScaleCommand() *cobra.Command {
	var f scaleFlags
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Create --keys keys in a zone of three nodes, then report RSS, snapshot size and restart time",
		Long: `Start a zone of three ` + "`keyzone server`" + ` processes (fsync on), create --keys keys
with --concurrency clients through the leader, wait until every node has taken
a snapshot holding nearly all of them, then report each node's resident memory
(VmRSS), the size of its newest snapshot, and the time a follower stopped and
started again takes to serve an encryption with the last key created (from the
process start until the answer).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cliContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBenchScale(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	cmd.Flags().IntVar(&f.keys, "keys", 1_000_000, "keys to create")
	cmd.Flags().IntVar(&f.concurrency, "concurrency", 64, "clients creating keys")
	cmd.Flags().StringVar(&f.jsonPath, "json", "", "also write the results as JSON to this file")
	cmd.Flags().BoolVar(&f.keep, "keep", false, "keep the nodes' data and logs (the directory is printed)")
	return cmd
}

// scaleSnapshotThreshold is the Raft snapshot threshold of the scale run
// (the server's default): the newest snapshot lags the log by at most
// this many entries once the writes stop.
const scaleSnapshotThreshold = 8192

func runBenchScale(ctx context.Context, out, progress io.Writer, f scaleFlags) error {
	if f.keys < 1 {
		return errors.New("--keys must be at least 1")
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := bench.TempDir()
	if err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintln(progress, "data and logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	operator, err := bench.NewToken()
	if err != nil {
		return err
	}
	// The nodes snapshot as in production (every SnapshotThreshold
	// entries, checked every SnapshotInterval): what a snapshot of a
	// large state costs while writes go on is part of the measure.
	zone, err := bench.StartZone(bench.ZoneOptions{Binary: bin, Dir: dir, Token: operator, ExtraArgs: []string{
		"--snapshot-threshold", strconv.Itoa(scaleSnapshotThreshold),
	}})
	if err != nil {
		return err
	}
	defer zone.Stop()
	leader, err := zone.WaitReady(ctx, 90*time.Second)
	if err != nil {
		return err
	}
	// The keys belong to an organization without quota or rate limit:
	// the operator token uses no organization's keys.
	token, err := zone.Organization(ctx, leader.URL)
	if err != nil {
		return err
	}
	res := scaleResult{Keys: f.keys, RSSBytes: map[string]int64{}, SnapshotBytes: map[string]int64{}, SnapshotIndex: map[string]int64{}}

	fmt.Fprintf(progress, "creating %d keys with %d clients through %s\n", f.keys, f.concurrency, leader.Name)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	st, err := bench.Run(ctx, bench.Config{Concurrency: f.concurrency, Warmup: -1, Count: f.keys}, bench.Request{
		Method: http.MethodPost, URL: leader.URL + "/v1/keys", Status: http.StatusCreated,
		Header: http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}},
		Body: func(w, seq int) []byte {
			return []byte(`{"name":"scale-` + run + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(seq) + `"}`)
		},
	})
	if err != nil {
		return err
	}
	res.CreateSeconds, res.CreatePerSec, res.CreateErrors = st.Seconds, st.ReqPerSec, st.Errors

	c, err := client.New(leader.URL, token)
	if err != nil {
		return err
	}
	status, err := c.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	last, err := c.CreateKey(ctx, wire.CreateKeyRequest{Name: "scale-" + run + "-last"})
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "created at %.0f keys/s; waiting for every node's snapshot\n", st.ReqPerSec)
	want := int64(status.CommitIndex) - scaleSnapshotThreshold
	deadline := time.Now().Add(10 * time.Minute)
	for _, p := range zone.Nodes {
		for {
			idx, size, err := newestSnapshot(filepath.Join(dir, p.Name, "raft", "snapshots"))
			if err == nil && idx >= want {
				res.SnapshotIndex[p.Name], res.SnapshotBytes[p.Name] = idx, size
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s has no snapshot at index %d or later after 10 minutes (newest: %d, %v)", p.Name, want, idx, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	for _, p := range zone.Nodes {
		if res.RSSBytes[p.Name], err = bench.RSS(p.PID()); err != nil {
			return err
		}
	}

	var follower *bench.Proc
	for _, p := range zone.Nodes {
		if p != leader {
			follower = p
			break
		}
	}
	fmt.Fprintf(progress, "restarting %s\n", follower.Name)
	follower.Stop()
	started := time.Now()
	if err := zone.Restart(follower); err != nil {
		return err
	}
	fc, err := client.New(follower.URL, token, client.WithTimeout(2*time.Second))
	if err != nil {
		return err
	}
	for {
		if _, err := fc.Encrypt(ctx, last.ID, wire.EncryptRequest{Plaintext: []byte("scale")}); err == nil {
			break
		}
		if follower.Exited() {
			return fmt.Errorf("%s exited after its restart (log: %s)", follower.Name, follower.LogFile())
		}
		if time.Since(started) > 5*time.Minute {
			return fmt.Errorf("%s does not serve 5 minutes after its restart", follower.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.RestartNode, res.RestartSeconds = follower.Name, time.Since(started).Seconds()

	fmt.Fprintf(out, "\n%d keys (1 version each) created in %.0fs: %.0f keys/s, %d errors, %d clients, 3 nodes, fsync on\n\n",
		res.Keys, res.CreateSeconds, res.CreatePerSec, res.CreateErrors, f.concurrency)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\trole\tRSS\tsnapshot\tsnapshot index\t")
	for _, p := range zone.Nodes {
		role := "follower"
		if p == leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f MiB\t%.0f MiB\t%d\t\n", p.Name, role, float64(res.RSSBytes[p.Name])/(1<<20), float64(res.SnapshotBytes[p.Name])/(1<<20), res.SnapshotIndex[p.Name])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s stopped and started again: serving (an encryption with the last key) %.2fs after its process started\n", res.RestartNode, res.RestartSeconds)
	if f.jsonPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(f.jsonPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "results written to %s\n", f.jsonPath)
	}
	return nil
}

// newestSnapshot returns the index and size of the newest Raft snapshot
// in dir (raft's file snapshot store: one directory per snapshot, with a
// meta.json).
func newestSnapshot(dir string) (index, size int64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue // being written: its meta.json has no size yet
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue // being written
		}
		var meta struct{ Index, Size int64 }
		if json.Unmarshal(b, &meta) == nil && meta.Index > index {
			index, size = meta.Index, meta.Size
		}
	}
	if index == 0 {
		return 0, 0, errors.New("no snapshot yet")
	}
	return index, size, nil
}
