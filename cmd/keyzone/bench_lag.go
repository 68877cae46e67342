package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/bench"
	"github.com/keyzone/keyzone/client"
)

type lagBenchFlags struct {
	envFile   string
	wait      time.Duration
	primary   string
	rotations int
	creates   int
	poll      time.Duration
	timeout   time.Duration
}

// newLagBenchCommand is `keyzone dev lag-bench`, a hidden developer tool:
// it measures, against a running `keyzone dev`, how long a rotation
// acknowledged by the primary zone takes to become the encrypting version
// in every zone.
func newLagBenchCommand() *cobra.Command {
	var f lagBenchFlags
	cmd := &cobra.Command{
		Use:    "lag-bench",
		Hidden: true,
		Short:  "Measure the replication lag of rotations across the zones of a running `keyzone dev`",
		Long: `Measure the replication lag of rotations across the zones of a running
` + "`keyzone dev --zones N`" + `: create a key in the primary zone replicated to every
other zone, then rotate it --rotations times. After each rotation call returns
(the acknowledgement in the primary zone), every node of every zone is asked to
encrypt every --poll until it answers with the new version; the time from the
acknowledgement to that answer is the lag. Prints p50/p99/max per zone. The
first ciphertext the primary zone makes under a new version is decrypted in
every other zone at once: a failure stops the bench.
With --creates it first measures the same for new keys: from the create call's
return until every node encrypts with the key (a 404 meanwhile is the lag).

The zones are read from KEYZONE_TOKEN and KEYZONE_ADDR_ZONE_* in --env-file (as
` + "`keyzone dev --env-file`" + ` writes it; waited for up to --wait) or else the environment.

  keyzone dev --zones 3 --env-file .dev/env &
  keyzone dev lag-bench --env-file .dev/env --rotations 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := runLagBench(cliContext(cmd), cmd.OutOrStdout(), f)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.envFile, "env-file", "", "read KEYZONE_TOKEN and KEYZONE_ADDR_ZONE_* from this file (default: the environment)")
	fl.DurationVar(&f.wait, "wait", time.Minute, "how long to wait for --env-file to appear")
	fl.StringVar(&f.primary, "primary", "zone-a", "zone the key is created and rotated in")
	fl.IntVar(&f.rotations, "rotations", 100, "rotations to measure")
	fl.IntVar(&f.creates, "creates", 20, "also measure how long this many new keys take to encrypt in every zone")
	fl.DurationVar(&f.poll, "poll", time.Millisecond, "pause between two encryptions of one poller")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on a rotation that has not reached every node after this long")
	return cmd
}

// benchNode is one node the bench polls.
type benchNode struct {
	id, zone string
	envNode  bool // the zone's address in the env file
	c        *client.Client
}

// runLagBench runs the bench, prints its tables, and returns the lags of
// the rotations: to the replica zones' env nodes, and to every node.
func runLagBench(ctx context.Context, out io.Writer, f lagBenchFlags) ([]bench.Lag, error) {
	if f.rotations < 1 {
		return nil, errors.New("--rotations must be at least 1")
	}
	env, err := lagBenchEnv(ctx, f)
	if err != nil {
		return nil, err
	}
	nodes, err := lagBenchNodes(ctx, env)
	if err != nil {
		return nil, err
	}
	var primary *benchNode
	var replicas []string
	for _, n := range nodes {
		switch {
		case n.envNode && n.zone == f.primary:
			primary = n
		case n.envNode:
			replicas = append(replicas, n.zone)
		}
	}
	if primary == nil {
		return nil, fmt.Errorf("no address of the primary zone %s (KEYZONE_ADDR_%s)", f.primary, envZone(f.primary))
	}
	if len(replicas) == 0 {
		return nil, errors.New("only one zone: start `keyzone dev --zones 3`")
	}
	slices.Sort(replicas)

	create := func(name string) (wire.Key, time.Time, error) {
		k, err := primary.c.CreateKey(ctx, wire.CreateKeyRequest{
			Name:         name,
			Description:  "created by keyzone dev lag-bench",
			ReplicaZones: replicas,
		})
		if err != nil {
			return k, time.Time{}, fmt.Errorf("create a key in %s: %w", f.primary, err)
		}
		return k, time.Now(), nil
	}
	run := time.Now().Unix()
	fmt.Fprintf(out, "primary %s, replicas %s; %d nodes polled every %s\n",
		f.primary, strings.Join(replicas, ", "), len(nodes), f.poll)
	var createLags [][]time.Duration
	for i := range f.creates {
		k, acked, err := create(fmt.Sprintf("lag-bench-%d-create-%d", run, i+1))
		if err != nil {
			return nil, err
		}
		l, err := pollNodes(ctx, nodes, k.ID, 1, f.poll, acked, f.timeout, true, nil)
		if err != nil {
			return nil, fmt.Errorf("new key %d: %w", i+1, err)
		}
		createLags = append(createLags, l)
	}
	k, acked, err := create(fmt.Sprintf("lag-bench-%d", run))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "rotating key %s\n", k.ID)
	// Start once every node encrypts with the first version.
	if _, err := pollNodes(ctx, nodes, k.ID, 1, f.poll, acked, f.timeout, true, nil); err != nil {
		return nil, fmt.Errorf("waiting for the new key in every zone: %w", err)
	}

	// lags[i][j]: rotation i, node j, from the rotation's acknowledgement
	// until node j's first encryption under the new version.
	var (
		lags    [][]time.Duration
		calls   []time.Duration
		pending int
	)
	version := k.CurrentVersion
	for i := range f.rotations {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		start := time.Now()
		r, err := primary.c.RotateKey(ctx, k.ID)
		acked := time.Now()
		if err != nil {
			return nil, fmt.Errorf("rotation %d: %w", i+1, err)
		}
		version++
		switch {
		case r.PendingVersion == version:
			pending++
		case r.CurrentVersion != version:
			return nil, fmt.Errorf("rotation %d answered current %d pending %d, want version %d", i+1, r.CurrentVersion, r.PendingVersion, version)
		}
		calls = append(calls, acked.Sub(start))
		// The first ciphertext the primary zone makes under the new
		// version must decrypt in every replica zone at once: that is what
		// the two phases are for.
		var undecryptable []error
		var mu sync.Mutex
		check := func(n *benchNode, ct []byte) {
			if n != primary {
				return
			}
			for _, r := range nodes {
				if r.envNode && r.zone != f.primary {
					if _, err := r.c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: ct}); err != nil {
						mu.Lock()
						undecryptable = append(undecryptable, fmt.Errorf("%s can't decrypt what %s made under version %d: %w", r.zone, f.primary, version, err))
						mu.Unlock()
					}
				}
			}
		}
		l, err := pollNodes(ctx, nodes, k.ID, version, f.poll, acked, f.timeout, false, check)
		if err = errors.Join(append([]error{err}, undecryptable...)...); err != nil {
			return nil, fmt.Errorf("rotation %d: %w", i+1, err)
		}
		lags = append(lags, l)
		if (i+1)%25 == 0 {
			fmt.Fprintf(out, "  %d rotations\n", i+1)
		}
	}

	fmt.Fprintf(out, "\n%d rotations; %d answered with the new version still pending (waiting for replica zones).\n", f.rotations, pending)
	fmt.Fprintf(out, "Lag = from the rotate call's return in %s until an encrypt answers with the new version.\n\n", f.primary)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tp50\tp99\tmax\t")
	var result []bench.Lag
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	row := func(name string, d []time.Duration) {
		slices.Sort(d)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, fmtDur(quantile(d, 0.50)), fmtDur(quantile(d, 0.99)), fmtDur(d[len(d)-1]))
	}
	rotationRow := func(name string, d []time.Duration) {
		row(name, d)
		zones := map[string]string{"replica zones (every node)": "replica zones", "every node of every zone": "every node"}[name]
		if zones != "" {
			result = append(result, bench.Lag{Rotations: len(d), Zones: zones, P50ms: ms(quantile(d, 0.50)), P99ms: ms(quantile(d, 0.99)), Maxms: ms(d[len(d)-1])})
		}
	}
	row("rotate call ("+primary.id+")", calls)
	lagRows(rotationRow, nodes, lags, f.primary, replicas)
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	if len(createLags) == 0 {
		return result, nil
	}
	fmt.Fprintf(out, "\n%d new keys: lag = from the create call's return in %s until an encrypt with the key succeeds.\n\n", len(createLags), f.primary)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tp50\tp99\tmax\t")
	lagRows(row, nodes, createLags, f.primary, replicas)
	return result, tw.Flush()
}

// lagRows adds the rows of lags (per sample, per node) to a table: per
// zone its env node and its slowest node, then every replica zone's env
// node and every node.
func lagRows(row func(string, []time.Duration), nodes []*benchNode, lags [][]time.Duration, primary string, replicas []string) {
	// worst collects, per sample, the largest lag of the nodes keep accepts.
	worst := func(keep func(*benchNode) bool) []time.Duration {
		var d []time.Duration
		for _, l := range lags {
			var w time.Duration
			for j, n := range nodes {
				if keep(n) {
					w = max(w, l[j])
				}
			}
			d = append(d, w)
		}
		return d
	}
	for _, z := range append([]string{primary}, replicas...) {
		var envID string
		for _, n := range nodes {
			if n.zone == z && n.envNode {
				envID = n.id
			}
		}
		row(fmt.Sprintf("%s (%s)", z, envID), worst(func(n *benchNode) bool { return n.zone == z && n.envNode }))
		row(z+" (every node)", worst(func(n *benchNode) bool { return n.zone == z }))
	}
	row("replica zones (env nodes)", worst(func(n *benchNode) bool { return n.envNode && n.zone != primary }))
	row("replica zones (every node)", worst(func(n *benchNode) bool { return n.zone != primary }))
	row("every node of every zone", worst(func(*benchNode) bool { return true }))
}

// pollNodes asks every node to encrypt under key id every poll until it
// answers with version, and returns per node the time from since until
// that answer. An answer with a later version, or a failure, is an error;
// with newKey, "key not found" only means not yet.
// first, if not nil, is called with each node's first ciphertext under
// version.
func pollNodes(ctx context.Context, nodes []*benchNode, id string, version uint32, poll time.Duration, since time.Time, timeout time.Duration, newKey bool, first func(*benchNode, []byte)) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lags := make([]time.Duration, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for j, n := range nodes {
		wg.Go(func() {
			req := wire.EncryptRequest{Plaintext: []byte("lag-bench")}
			for {
				enc, err := n.c.Encrypt(ctx, id, req)
				now := time.Now()
				var apiErr *client.Error
				if newKey && errors.As(err, &apiErr) && apiErr.Code == "key_not_found" {
					err, enc = nil, wire.EncryptResponse{}
				}
				switch {
				case ctx.Err() != nil:
					errs[j] = fmt.Errorf("%s (%s) still not at version %d after %s", n.id, n.zone, version, timeout)
					return
				case err != nil:
					errs[j] = fmt.Errorf("encrypt on %s (%s): %w", n.id, n.zone, err)
					return
				case enc.KeyVersion == version:
					lags[j] = now.Sub(since)
					if first != nil {
						first(n, enc.Ciphertext)
					}
					return
				case enc.KeyVersion > version:
					errs[j] = fmt.Errorf("%s (%s) encrypted with version %d, newer than %d", n.id, n.zone, enc.KeyVersion, version)
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(poll):
				}
			}
		})
	}
	wg.Wait()
	return lags, errors.Join(errs...)
}

// lagBenchEnv returns the KEYZONE_* variables of --env-file, or of the
// environment.
func lagBenchEnv(ctx context.Context, f lagBenchFlags) (map[string]string, error) {
	env := map[string]string{}
	if f.envFile == "" {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "KEYZONE_") {
				env[k] = v
			}
		}
		return env, nil
	}
	deadline := time.Now().Add(f.wait)
	var b []byte
	for {
		var err error
		if b, err = os.ReadFile(f.envFile); err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return nil, fmt.Errorf("env file: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// lagBenchNodes finds every node of every zone named in env, through
// each zone's cluster status.
func lagBenchNodes(ctx context.Context, env map[string]string) ([]*benchNode, error) {
	token := env["KEYZONE_TOKEN"]
	if token == "" {
		return nil, errors.New("no KEYZONE_TOKEN: give --env-file or source the env file of `keyzone dev`")
	}
	var nodes []*benchNode
	for k, addr := range env {
		if !strings.HasPrefix(k, "KEYZONE_ADDR_") {
			continue
		}
		c, err := client.New(addr, token)
		if err != nil {
			return nil, err
		}
		st, err := c.ClusterStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", k, addr, err)
		}
		for _, n := range st.Nodes {
			bn := &benchNode{id: n.ID, zone: st.Zone, envNode: n.APIAddress == strings.TrimRight(addr, "/")}
			if bn.envNode {
				bn.c = c
			} else if bn.c, err = client.New(n.APIAddress, token); err != nil {
				return nil, err
			}
			nodes = append(nodes, bn)
		}
	}
	if len(nodes) == 0 {
		return nil, errors.New("no KEYZONE_ADDR_<ZONE> addresses: give --env-file or source the env file of `keyzone dev`")
	}
	slices.SortFunc(nodes, func(a, b *benchNode) int { return strings.Compare(a.zone+"/"+a.id, b.zone+"/"+b.id) })
	return nodes, nil
}

// quantile returns the nearest-rank q-quantile of sorted d.
func quantile(d []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}
