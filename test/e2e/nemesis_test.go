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

	"github.com/anishathalye/porcupine"
)

// fault is one injected fault: from injected to healed the fault holds,
// from healed to recovered the test polls until every node is healthy
// and the zones see each other again. converged is how long after the
// heal every replica zone had acknowledged zone-a's change log as it
// stood at the heal.
type fault struct {
	name                        string
	injected, healed, recovered time.Time
	// next is the next fault's injection, or the workload's end: the
	// window "after" a fault runs from recovered to next.
	next      time.Time
	converged time.Duration
	convErr   error
}

// nemesis injects faults one at a time, each healed and recovered from
// before the next.
type nemesis struct {
	t      *testing.T
	e      *env
	ctx    context.Context
	gap    time.Duration // steady time after each recovery
	faults []*fault
}

func (n *nemesis) inject(name string, do, heal func()) {
	t, e := n.t, n.e
	f := &fault{name: name, injected: time.Now()}
	if len(n.faults) > 0 {
		n.faults[len(n.faults)-1].next = f.injected
	}
	n.faults = append(n.faults, f)
	t.Logf("fault %q injected", name)
	do()
	heal()
	f.healed = time.Now()
	conv := make(chan struct{})
	go func() {
		defer close(conv)
		f.converged, f.convErr = e.convergence(n.ctx, f.healed, 3*time.Minute)
	}()
	// Generous bounds: on a machine starved of CPU a zone can take
	// minutes to settle on a leader again.
	e.waitHealthy(5*time.Minute, allNodes()...)
	e.waitZonesSeeEachOther(n.ctx, 3*time.Minute)
	f.recovered = time.Now()
	<-conv
	if f.convErr != nil {
		t.Errorf("fault %q: replica zones did not catch up after the heal: %v", name, f.convErr)
	}
	t.Logf("fault %q: held %v, recovered %v and converged %v after healing", name,
		f.healed.Sub(f.injected).Round(time.Millisecond), f.recovered.Sub(f.healed).Round(time.Millisecond),
		f.converged.Round(time.Millisecond))
	time.Sleep(n.gap)
}

// TestNemesis runs the workload in every zone while it injects faults,
// one after another and then combined: a leader killed, a leader paused
// beyond the election timeout, a zone cut off the inter-zone network, a
// node cut off its own zone, a whole zone restarted, a rolling restart of
// the nine nodes. Then it checks the recorded history: nothing
// acknowledged is lost, replicas converge (`keyzone cluster verify`),
// lifecycle operations are linearizable per key (porcupine), keys deleted
// during a fault are purged from every zone, no 5xx but 503 or 504 was
// answered, no container restarted on its own or panicked.
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
	e.ready(3 * time.Minute)
	ctx := context.Background()
	e.waitZonesSeeEachOther(ctx, time.Minute)
	t.Logf("nine nodes healthy after %v", time.Since(begin).Round(time.Millisecond))

	// First, alone on the zones: a leader killed under single writes.
	scenario := time.Now()
	leaderKillScenario(t, e)
	scenarioTook := time.Since(scenario)

	w := newWorkload(t, e, 3)
	w.seed(ctx, 6)
	dm := e.createDoomed(ctx, 4)
	w.start()
	stopped := false
	defer func() {
		if !stopped {
			w.stop()
		}
	}()

	// The rate before the first fault, over a steady window: too slow a
	// run does not count, and ends here.
	time.Sleep(steady)
	if _, _, rate := w.rate(window{start: w.started, end: time.Now()}); rate < minRate {
		t.Fatalf("%.1f successful ops/s before the first fault, want >= %.0f (KZ_E2E_MIN_OPS): the run does not count", rate, minRate)
	}

	n := &nemesis{t: t, e: e, ctx: ctx, gap: 3 * time.Second}
	for _, f := range e.faultPlan(ctx, dm) {
		n.inject(f.name, f.do, f.heal)
	}

	// A steady window after the last recovery.
	afterFrom := time.Now()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && (time.Since(afterFrom) < steady/2 || w.okSince(afterFrom) < 200) {
		time.Sleep(200 * time.Millisecond)
	}
	w.stop()
	stopped = true
	n.faults[len(n.faults)-1].next = w.stopped
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

	// Every key is read from zone-a and brought back to enabled (a
	// deletion cancelled, a disable undone) so that every ciphertext can
	// be checked; these calls join the history porcupine checks.
	repaired, lostRotations := w.repairKeys(ctx)

	// Convergence, with the product's own command, run in a container:
	// it reaches every zone by the addresses the nodes advertise.
	convStart := time.Now()
	rep, verr := e.verify(2 * time.Minute)
	convergence := time.Since(convStart)
	if verr != nil || !rep.OK() {
		var diffs []string
		for _, d := range rep.Differences {
			diffs = append(diffs, d.String())
		}
		t.Errorf("keyzone cluster verify --wait 2m: %v; %s\n%s", verr, rep.Summary(), strings.Join(diffs, "\n"))
	} else {
		t.Logf("keyzone cluster verify: %s (after %v)", rep.Summary(), convergence.Round(time.Millisecond))
	}

	purgeFailures := e.checkPurged(ctx, dm)
	missing := e.checkKeysEverywhere(ctx, w.keys)
	failedDecrypts := e.checkSealedEverywhere(ctx, w.sealed)
	bad5xx, unforced := checkServerErrors(t, w.ops, n.faults)

	verdict := checkLifecycle(w.ops, "zone-a", vizDir(e.project), 3*time.Minute)
	switch verdict.result {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Errorf("lifecycle history not linearizable: %s\n%s", verdict, verdict.detail)
	default:
		t.Errorf("lifecycle history: porcupine gave no verdict in time: %s", verdict)
	}

	e.checkNoRestartsOrPanics()

	t.Log(summary(w, n.faults, summaryFigures{
		repaired: repaired, lostRotations: lostRotations, verify: rep.Summary(), verifyErr: verr,
		convergence: convergence, missing: missing, failedDecrypts: failedDecrypts, bad5xx: bad5xx, unforced: unforced,
		verdict: verdict, minRate: minRate, total: time.Since(begin), doomed: dm, purgeFailures: purgeFailures, scenario: scenarioTook,
	}))
}

// plannedFault is one step of the fault plan.
type plannedFault struct {
	name     string
	do, heal func()
}

// faultPlan lists the faults, single then combined. Each step's do
// injects and holds the fault, heal undoes it; the nemesis waits for
// recovery in between.
func (e *env) faultPlan(ctx context.Context, dm *doomed) []plannedFault {
	t := e.t
	hold := 10 * time.Second
	var (
		killed, paused, cutNode string
		held                    time.Time
	)
	holdUntil := func(d time.Duration) {
		if r := time.Until(held.Add(d)); r > 0 {
			time.Sleep(r)
		}
	}
	return []plannedFault{
		{"kill zone-a leader", func() {
			killed = e.kill(ctx, e.leaderOf(ctx, "zone-a"))
			// Down until zone-a has a new leader.
			e.eventuallyNewLeader(ctx, "zone-a", killed, time.Minute)
		}, func() { e.startExited("zone-a") }},

		{"pause zone-b leader 5s", func() {
			paused = e.leaderOf(ctx, "zone-b")
			e.pause(paused)
			t.Logf("paused %s", paused)
			time.Sleep(5 * time.Second)
		}, func() { e.mustDocker(time.Minute, "unpause", e.container(paused)) }},

		{"cut zone-c off interzone, 4 keys purged meanwhile", func() {
			e.cutInterzone("zone-c")
			// zone-a purges them while zone-c can't hear of it.
			e.scheduleDoomed(ctx, dm)
			time.Sleep(purgeWindow + 5*time.Second)
		}, func() { e.healInterzone("zone-c") }},

		{"cut zone-a leader off zone-a 10s", func() {
			held = time.Now()
			cutNode = e.leaderOf(ctx, "zone-a")
			e.cutZoneNet(cutNode)
			e.eventuallyNewLeader(ctx, "zone-a", cutNode, time.Minute)
			holdUntil(hold)
		}, func() { e.healZoneNet(cutNode) }},

		{"restart zone-b (all at once)", func() { e.restartAtOnce(zoneNodes["zone-b"]...) }, func() {}},

		{"rolling restart of the nine", func() {
			// SIGTERM, SIGKILL 2 s later, one node at a time, each
			// healthy again before the next.
			for _, n := range allNodes() {
				e.mustDocker(2*time.Minute, "restart", "-t", "2", e.container(n))
				e.waitHealthy(2*time.Minute, n)
			}
		}, func() {}},

		{"kill zone-a leader + cut zone-c off + pause a zone-b follower", func() {
			held = time.Now()
			e.cutInterzone("zone-c")
			paused = e.follower(ctx, "zone-b")
			e.pause(paused)
			killed = e.kill(ctx, e.leaderOf(ctx, "zone-a"))
			e.eventuallyNewLeader(ctx, "zone-a", killed, time.Minute)
			holdUntil(hold)
		}, func() {
			e.startExited("zone-a")
			e.mustDocker(time.Minute, "unpause", e.container(paused))
			e.healInterzone("zone-c")
		}},

		{"cut zone-b off + cut zone-c leader off zone-c + pause zone-a leader", func() {
			held = time.Now()
			e.cutInterzone("zone-b")
			cutNode = e.leaderOf(ctx, "zone-c")
			e.cutZoneNet(cutNode)
			paused = e.leaderOf(ctx, "zone-a")
			e.pause(paused)
			t.Logf("paused %s", paused)
			e.eventuallyNewLeader(ctx, "zone-a", paused, time.Minute)
			holdUntil(hold)
		}, func() {
			e.mustDocker(time.Minute, "unpause", e.container(paused))
			e.healZoneNet(cutNode)
			e.healInterzone("zone-b")
		}},
	}
}

// kill kills a node's container.
func (e *env) kill(_ context.Context, node string) string {
	e.mustDocker(time.Minute, "kill", e.container(node))
	e.t.Logf("killed %s", node)
	return node
}

// pause freezes a node's container. The cgroup freezer can fail under
// load ("unable to freeze"), leaving the container running: it is tried
// again.
func (e *env) pause(node string) {
	e.t.Helper()
	var err error
	for range 5 {
		if _, err = e.run(time.Minute, "docker", "pause", e.container(node)); err == nil {
			return
		}
		if e.state(node) == "paused" {
			return
		}
		time.Sleep(time.Second)
	}
	e.t.Fatal(err)
}

// restartAtOnce restarts the nodes' containers concurrently (docker
// restart with several containers takes them one after another).
func (e *env) restartAtOnce(nodes ...string) {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		id := e.container(n)
		wg.Go(func() { _, errs[i] = e.run(2*time.Minute, "docker", "restart", "-t", "10", id) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// startExited starts the zone's stopped containers again.
func (e *env) startExited(zone string) {
	for _, n := range zoneNodes[zone] {
		if st := e.state(n); st == "exited" {
			e.mustDocker(time.Minute, "start", e.container(n))
		}
	}
}

// cutInterzone disconnects a zone's nodes from the inter-zone network:
// the zone goes on alone (Raft runs on its own network).
func (e *env) cutInterzone(zone string) {
	net := e.network("interzone")
	for _, n := range zoneNodes[zone] {
		e.mustDocker(time.Minute, "network", "disconnect", net, e.container(n))
	}
	e.t.Logf("cut %s off the inter-zone network", zone)
}

// healInterzone reconnects them with their fixed addresses and their
// service names as DNS aliases (other zones dial http://<node>:8200).
func (e *env) healInterzone(zone string) {
	net := e.network("interzone")
	for _, n := range zoneNodes[zone] {
		e.mustDocker(time.Minute, "network", "connect", "--ip", e.interzoneIP(n), "--alias", n, net, e.container(n))
	}
}

// cutZoneNet disconnects one node from its zone's network: it loses its
// Raft peers but stays in the gossip pool and reachable from other zones.
func (e *env) cutZoneNet(node string) {
	e.mustDocker(time.Minute, "network", "disconnect", e.network(nodeZone(node)), e.container(node))
	e.t.Logf("cut %s off the %s network", node, nodeZone(node))
}

func (e *env) healZoneNet(node string) {
	e.mustDocker(time.Minute, "network", "connect", "--ip", e.zoneIP(node), "--alias", node,
		e.network(nodeZone(node)), e.container(node))
}

// follower returns a node of the zone that is not its leader.
func (e *env) follower(ctx context.Context, zone string) string {
	leader := e.leaderOf(ctx, zone)
	for _, n := range zoneNodes[zone] {
		if n != leader {
			return n
		}
	}
	return ""
}

func nodeZone(node string) string { return "zone-" + node[:1] }

// convergence polls zone-a until both replica zones have acknowledged its
// change log up to the head it had at (or just after) healed, and returns
// how long after healed that was.
func (e *env) convergence(ctx context.Context, healed time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := healed.Add(timeout)
	var head uint64
	for head == 0 && time.Now().Before(deadline) {
		for _, n := range zoneNodes["zone-a"] {
			if zs, err := e.probes[n].Zones(ctx); err == nil && len(zs.Zones) > 0 && zs.Zones[0].Local {
				head = max(head, zs.Zones[0].ChangeSeq)
			}
		}
		if head == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	last := "no zone-a node answered"
	for time.Now().Before(deadline) {
		for _, n := range zoneNodes["zone-a"] {
			zs, err := e.probes[n].Zones(ctx)
			if err != nil || len(zs.Zones) == 0 || !zs.Zones[0].Local {
				continue
			}
			acked := 0
			for _, z := range zs.Zones[1:] {
				if z.Acked >= head {
					acked++
				}
			}
			if acked == len(zones)-1 {
				return time.Since(healed), nil
			}
			last = fmt.Sprintf("%s: %d of %d zones acked it", n, acked, len(zones)-1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("not within %v (zone-a change log head %d; %s)", timeout, head, last)
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

// checkKeysEverywhere checks that every acknowledged key is in its primary
// zone and every replica zone; it returns how many (key, zone) are missing.
func (e *env) checkKeysEverywhere(ctx context.Context, ids []string) int {
	e.t.Helper()
	type job struct{ id, zone string }
	jobs := make(chan job)
	var mu sync.Mutex
	missing := 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			for j := range jobs {
				var err error
				for _, n := range zoneNodes[j.zone] {
					kk, gerr := e.clients[n].GetKey(ctx, j.id)
					if err = gerr; err == nil {
						if kk.PrimaryZone != "zone-a" || !slices.Equal(kk.ReplicaZones, []string{"zone-b", "zone-c"}) {
							err = fmt.Errorf("primary %q replicas %v", kk.PrimaryZone, kk.ReplicaZones)
						}
						break
					}
				}
				if err != nil {
					mu.Lock()
					missing++
					if missing <= 20 {
						e.t.Errorf("acknowledged key %s in %s: %v", j.id, j.zone, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		for _, z := range zones {
			jobs <- job{id, z}
		}
	}
	close(jobs)
	wg.Wait()
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
	for range 16 {
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

// checkServerErrors fails the run on every 5xx answer but 503 (no leader,
// leadership lost, shutting down) and 504 (Raft did not commit in time):
// those two are how a node says "unavailable, retry". It returns the
// number of those failures and of the 503/504 answered outside any fault
// (injection to recovery), which are reported, not failed: on a machine
// starved of CPU a zone can lose its leader without help.
func checkServerErrors(t *testing.T, ops []op, faults []*fault) (bad, unforced int) {
	t.Helper()
	kinds := map[string]int{}
	var examples []string
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
		unavailable := o.status == 503 || o.status == 504
		if unavailable && during {
			continue
		}
		kinds[fmt.Sprintf("%s %s during-fault=%v", o.kind, o.result, during)]++
		if len(examples) < 10 {
			examples = append(examples, fmt.Sprintf("%s %s on %s key %s at %s: %s", o.kind, o.zone, o.node, o.keyID,
				o.start.Format("15:04:05.000"), o.result))
		}
		if unavailable {
			unforced++
		} else {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d 5xx answers other than 503/504: %v\nexamples:\n%s", bad, kinds, strings.Join(examples, "\n"))
	} else if unforced > 0 {
		t.Logf("%d 503/504 answers outside the faults: %v\nexamples:\n%s", unforced, kinds, strings.Join(examples, "\n"))
	}
	return bad, unforced
}
