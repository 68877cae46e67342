//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/client/verify"
)

// fault is one injected fault: from injected to healed the fault holds,
// from healed to recovered the test polls until every node is healthy
// and the zones see each other again.
type fault struct {
	name                        string
	injected, healed, recovered time.Time
}

// TestNemesis runs the workload in every zone while it injects, one after
// another, a leader kill, a pause beyond the election timeout, a zone cut
// off the inter-zone network and a restart of a whole zone, then checks
// the recorded history: nothing acknowledged is lost, replicas converge,
// and no 5xx but 503 was answered, and those only during a fault.
func TestNemesis(t *testing.T) {
	begin := time.Now()
	minRate := 100.0
	if v := getenv("KZ_E2E_MIN_OPS", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("KZ_E2E_MIN_OPS: %v", err)
		}
		minRate = f
	}
	steady := 10 * time.Second
	if v := getenv("KZ_E2E_STEADY", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("KZ_E2E_STEADY: %v", err)
		}
		steady = d
	}

	e := startEnv(t)
	e.waitHealthy(3*time.Minute, allNodes()...)
	ctx := context.Background()
	e.waitZonesSeeEachOther(ctx, time.Minute)
	t.Logf("nine nodes healthy after %v", time.Since(begin).Round(time.Millisecond))

	w := newWorkload(t, e, 4)
	w.seed(ctx, 6)
	w.start()
	stopped := false
	defer func() {
		if !stopped {
			w.stop()
		}
	}()

	// The rate before the first fault: a steady window of the workload.
	time.Sleep(steady)
	var faults []*fault
	inject := func(name string, do func(), heal func()) {
		f := &fault{name: name, injected: time.Now()}
		faults = append(faults, f)
		t.Logf("fault %q injected", name)
		do()
		heal()
		f.healed = time.Now()
		e.waitHealthy(3*time.Minute, allNodes()...)
		e.waitZonesSeeEachOther(ctx, 2*time.Minute)
		f.recovered = time.Now()
		t.Logf("fault %q: held %v, recovered %v after healing", name,
			f.healed.Sub(f.injected).Round(time.Millisecond), f.recovered.Sub(f.healed).Round(time.Millisecond))
	}

	// (a) kill zone-a's leader, then start it again.
	inject("kill zone-a leader", func() {
		leader := e.leaderOf(ctx, "zone-a")
		e.mustDocker(time.Minute, "kill", e.container(leader))
		t.Logf("killed %s", leader)
		// Down until zone-a has a new leader.
		e.eventuallyNewLeader(ctx, "zone-a", leader, time.Minute)
	}, func() {
		for _, n := range zoneNodes["zone-a"] {
			if st := e.state(n); st == "exited" {
				e.mustDocker(time.Minute, "start", e.container(n))
			}
		}
	})

	// (b) pause zone-b's leader for longer than the election timeout.
	var paused string
	inject("pause zone-b leader 5s", func() {
		paused = e.leaderOf(ctx, "zone-b")
		e.mustDocker(time.Minute, "pause", e.container(paused))
		t.Logf("paused %s", paused)
		time.Sleep(5 * time.Second)
	}, func() {
		e.mustDocker(time.Minute, "unpause", e.container(paused))
	})

	// (c) cut zone-c off the inter-zone network for 10 s, then heal it with
	// the same addresses and DNS aliases.
	interzone := e.network("interzone")
	inject("cut zone-c off interzone 10s", func() {
		for _, n := range zoneNodes["zone-c"] {
			e.mustDocker(time.Minute, "network", "disconnect", interzone, e.container(n))
		}
		time.Sleep(10 * time.Second)
	}, func() {
		for _, n := range zoneNodes["zone-c"] {
			e.mustDocker(time.Minute, "network", "connect", "--ip", e.interzoneIP(n), "--alias", n,
				interzone, e.container(n))
		}
	})

	// (d) restart every container of zone-b at once.
	inject("restart zone-b", func() {
		args := []string{"restart", "-t", "10"}
		for _, n := range zoneNodes["zone-b"] {
			args = append(args, e.container(n))
		}
		e.mustDocker(2*time.Minute, args...)
	}, func() {})

	// A steady window after the last recovery.
	afterFrom := time.Now()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && (time.Since(afterFrom) < steady/2 || w.okSince(afterFrom) < 200) {
		time.Sleep(200 * time.Millisecond)
	}
	w.stop()
	stopped = true
	t.Logf("workload stopped: %d operations", len(w.ops))

	// Unanswered creates are resolved with their idempotency keys.
	if n := w.resolvePending(ctx); n > 0 {
		t.Logf("resolved %d creates unanswered when the workload stopped", n)
	}
	w.mu.Lock()
	pendingLeft := len(w.pending)
	w.mu.Unlock()
	if pendingLeft > 0 {
		t.Errorf("%d creates still unanswered a minute after the faults", pendingLeft)
	}

	// Keys left disabled (a disable whose enable did not get through) are
	// enabled, so that every ciphertext can be checked.
	reenabled := 0
	a1 := e.clients["a1"]
	for _, id := range w.keys {
		k, err := a1.GetKey(ctx, id)
		if err != nil {
			t.Errorf("key %s in zone-a: %v", id, err)
			continue
		}
		if k.State == "disabled" {
			if _, err := a1.EnableKey(ctx, id); err != nil {
				t.Errorf("enable %s: %v", id, err)
			}
			reenabled++
		}
	}

	// Convergence, with the product's own check.
	checker := &verify.Checker{Addr: "http://127.0.0.1:" + e.port + hostPortSuffix["a1"], Dial: e.dialAdvertised}
	convStart := time.Now()
	rep, err := checker.Wait(ctx, 2*time.Minute)
	convergence := time.Since(convStart)
	if err != nil || !rep.OK() {
		var diffs []string
		for _, d := range rep.Differences {
			diffs = append(diffs, d.String())
		}
		t.Errorf("zones did not converge within 2m: %v; %s\n%s", err, rep.Summary(), strings.Join(diffs, "\n"))
	} else {
		t.Logf("verify: %s (after %v)", rep.Summary(), convergence.Round(time.Millisecond))
	}

	missing := e.checkKeysEverywhere(ctx, w.keys)
	failedDecrypts := e.checkSealedEverywhere(ctx, w.sealed)
	bad5xx := checkServerErrors(t, w.ops, faults)

	e.checkNoRestartsOrPanics()

	// The summary.
	var windows []window
	windows = append(windows, window{"before faults", w.started, faults[0].injected})
	for _, f := range faults {
		windows = append(windows, window{f.name, f.injected, f.recovered})
	}
	windows = append(windows, window{"after faults", faults[len(faults)-1].recovered, w.stopped})
	var b strings.Builder
	fmt.Fprintf(&b, "\n=== nemesis summary ===\noperations by type and result:\n%s", w.table())
	fmt.Fprintf(&b, "\n%-30s %8s %8s %8s %9s\n", "window", "length", "ops", "ok", "ok ops/s")
	var before float64
	for i, win := range windows {
		okN, all, rate := w.rate(win)
		if i == 0 {
			before = rate
		}
		fmt.Fprintf(&b, "%-30s %8s %8d %8d %9.1f\n", win.name, win.end.Sub(win.start).Round(100*time.Millisecond), all, okN, rate)
	}
	fmt.Fprintf(&b, "\n%-30s %10s %12s\n", "fault", "held", "recovery")
	for _, f := range faults {
		fmt.Fprintf(&b, "%-30s %10s %12s\n", f.name, f.healed.Sub(f.injected).Round(time.Millisecond), f.recovered.Sub(f.healed).Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\nacknowledged keys %d (seeded 6), acknowledged ciphertexts %d, keys re-enabled before the checks %d\n",
		len(w.keys), len(w.sealed), reenabled)
	fmt.Fprintf(&b, "convergence after the last heal: %v; keys missing in a zone: %d; ciphertexts failing to decrypt in a zone: %d; unexpected 5xx: %d\n",
		convergence.Round(time.Millisecond), missing, failedDecrypts, bad5xx)
	fmt.Fprintf(&b, "ok ops/s before the first fault: %.1f (threshold %.0f, KZ_E2E_MIN_OPS)\ntotal %v\n", before, minRate, time.Since(begin).Round(time.Second))
	t.Log(b.String())
	if before < minRate {
		t.Errorf("%.1f successful ops/s before the first fault, want >= %.0f: the run does not count", before, minRate)
	}
}

// waitZonesSeeEachOther waits until every zone sees the three zones with
// three nodes each.
func (e *env) waitZonesSeeEachOther(ctx context.Context, timeout time.Duration) {
	e.t.Helper()
	eventually(e.t, timeout, "zones see each other", func() error {
		for _, z := range zones {
			var lastErr error
			seen := false
			for _, n := range zoneNodes[z] {
				zs, err := e.clients[n].Zones(ctx)
				if err != nil {
					lastErr = err
					continue
				}
				if len(zs.Zones) != 3 {
					return fmt.Errorf("%s sees %d zones", n, len(zs.Zones))
				}
				for _, s := range zs.Zones {
					if len(s.Nodes) != 3 {
						return fmt.Errorf("%s sees %d nodes in %s", n, len(s.Nodes), s.Name)
					}
				}
				seen = true
			}
			if !seen {
				return fmt.Errorf("%s: %v", z, lastErr)
			}
		}
		return nil
	})
}

// leaderOf returns the zone's Raft leader as one of its nodes sees it.
func (e *env) leaderOf(ctx context.Context, zone string) string {
	e.t.Helper()
	var leader string
	eventually(e.t, time.Minute, zone+" has a leader", func() error {
		for _, n := range zoneNodes[zone] {
			st, err := e.clients[n].ClusterStatus(ctx)
			if err == nil && slices.Contains(zoneNodes[zone], st.Leader) {
				leader = st.Leader
				return nil
			}
		}
		return fmt.Errorf("no node of %s names a leader", zone)
	})
	return leader
}

func (e *env) eventuallyNewLeader(ctx context.Context, zone, old string, timeout time.Duration) {
	e.t.Helper()
	eventually(e.t, timeout, zone+" elects a new leader", func() error {
		for _, n := range zoneNodes[zone] {
			if n == old {
				continue
			}
			st, err := e.clients[n].ClusterStatus(ctx)
			if err == nil && st.Leader != "" && st.Leader != old {
				return nil
			}
		}
		return fmt.Errorf("no new leader yet")
	})
}

// state is the container's docker state (running, exited, paused...).
func (e *env) state(node string) string {
	return e.mustDocker(time.Minute, "inspect", "-f", "{{.State.Status}}", e.container(node))
}

// network returns the docker name of one of the project's compose networks.
func (e *env) network(name string) string {
	e.t.Helper()
	out := e.mustDocker(time.Minute, "network", "ls", "--format", "{{.Name}}",
		"--filter", "label=com.docker.compose.project="+e.project,
		"--filter", "label=com.docker.compose.network="+name)
	if nets := strings.Fields(out); len(nets) == 1 {
		return nets[0]
	}
	e.t.Fatalf("network %s of project %s: got %q", name, e.project, out)
	return ""
}

// interzoneIP is the node's fixed address on the inter-zone network.
func (e *env) interzoneIP(node string) string {
	subnet := getenv("KZ_E2E_SUBNET", "10.214")
	return fmt.Sprintf("%s.0.%d%c", subnet, int(node[0]-'a')+1, node[1])
}

// dialAdvertised maps an advertised API address (http://a1:8200, reachable
// only between containers) to the node's published port.
func (e *env) dialAdvertised(addr string) (*client.Client, error) {
	for n, sfx := range hostPortSuffix {
		if addr == "http://"+n+":8200" {
			addr = "http://127.0.0.1:" + e.port + sfx
			break
		}
	}
	return client.New(addr, e.token, client.WithTimeout(5*time.Second))
}

// checkKeysEverywhere checks that every acknowledged key is in its primary
// zone and every replica zone; it returns how many (key, zone) are missing.
func (e *env) checkKeysEverywhere(ctx context.Context, ids []string) int {
	e.t.Helper()
	missing := 0
	for _, id := range ids {
		for _, z := range zones {
			var err error
			for _, n := range zoneNodes[z] {
				kk, gerr := e.clients[n].GetKey(ctx, id)
				if err = gerr; err == nil {
					if kk.PrimaryZone != "zone-a" || !slices.Equal(kk.ReplicaZones, []string{"zone-b", "zone-c"}) {
						err = fmt.Errorf("primary %q replicas %v", kk.PrimaryZone, kk.ReplicaZones)
					}
					break
				}
			}
			if err != nil {
				missing++
				e.t.Errorf("acknowledged key %s in %s: %v", id, z, err)
			}
		}
	}
	return missing
}

// checkSealedEverywhere decrypts every acknowledged ciphertext in every
// zone (all the workload's keys are in the three zones); it returns the
// number of failures.
func (e *env) checkSealedEverywhere(ctx context.Context, all []sealed) int {
	e.t.Helper()
	type job struct {
		s    sealed
		node string
	}
	jobs := make(chan job)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			for j := range jobs {
				var err error
				for try := range 3 {
					if err = opens(ctx, e.clients[j.node], j.s); err == nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
				}
				if err != nil {
					mu.Lock()
					failed++
					if failed <= 20 {
						e.t.Errorf("acknowledged ciphertext of %s v%d in %s: %v", j.s.keyID, j.s.version, j.node, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i, s := range all {
		for _, z := range zones {
			jobs <- job{s, zoneNodes[z][i%3]}
		}
	}
	close(jobs)
	wg.Wait()
	if failed > 20 {
		e.t.Errorf("... %d acknowledged decryptions failed in all", failed)
	}
	return failed
}

// checkServerErrors reports every 5xx answer other than a 503 during a
// fault (from injection to recovery); it returns their number.
func checkServerErrors(t *testing.T, ops []op, faults []*fault) int {
	t.Helper()
	bad := map[string]int{}
	var examples []string
	n := 0
	for _, o := range ops {
		if o.status < 500 {
			continue
		}
		during := false
		for _, f := range faults {
			if !o.end.Before(f.injected) && !o.start.After(f.recovered) {
				during = true
			}
		}
		if o.status == 503 && during {
			continue
		}
		n++
		bad[fmt.Sprintf("%s %s during-fault=%v", o.kind, o.result, during)]++
		if len(examples) < 10 {
			examples = append(examples, fmt.Sprintf("%s %s on %s key %s at %s: %s", o.kind, o.zone, o.node, o.keyID,
				o.start.Format("15:04:05.000"), o.result))
		}
	}
	if n > 0 {
		t.Errorf("%d unexpected 5xx answers: %v\nexamples:\n%s", n, bad, strings.Join(examples, "\n"))
	}
	return n
}
