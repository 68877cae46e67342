//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// op is one recorded operation of the workload.
type op struct {
	start, end time.Time
	zone, node string
	client     int    // the worker (porcupine's client id)
	kind       string // create, encrypt, decrypt, datakey, get, rotate, disable, enable, schedule-deletion, cancel-deletion
	keyID      string
	status     int     // HTTP status of an error answer; 0 when ok or no answer
	result     string  // "ok", "<status> <code>", or "transport"
	obs        *keyObs // the key as a successful lifecycle call or get answered it
}

func (o op) ok() bool { return o.result == "ok" }

// workload runs concurrent clients in every zone and records every
// operation they make.
type workload struct {
	t       *testing.T
	e       *env
	perZone int
	clients map[string]*client.Client // own clients, with a short timeout

	mu      sync.Mutex
	ops     []op
	keys    []string          // acknowledged multi-zone keys (primary zone-a)
	sealed  []sealed          // acknowledged ciphertexts (encrypts and data keys)
	pending map[string]string // idempotency key -> name of a create not yet answered

	seq     atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
	stopped time.Time
}

// newWorkload makes the workload's clients; perZone goroutines per zone.
func newWorkload(t *testing.T, e *env, perZone int) *workload {
	w := &workload{t: t, e: e, perZone: perZone, clients: map[string]*client.Client{}, pending: map[string]string{}}
	for node, sfx := range hostPortSuffix {
		// A paused node must not hold a worker for long.
		c, err := client.New("http://127.0.0.1:"+e.port+sfx, e.token, client.WithTimeout(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		w.clients[node] = c
	}
	return w
}

// seed creates n multi-zone keys before the workload starts, so that
// every zone has keys to use from the first second.
func (w *workload) seed(ctx context.Context, n int) {
	w.t.Helper()
	for i := range n {
		w.createUntilAnswered(ctx, "zone-a", "a1", fmt.Sprintf("seed-%d", i))
	}
	if len(w.keys) != n {
		w.t.Fatalf("seeded %d of %d keys", len(w.keys), n)
	}
}

// start launches the workers; stop ends them and waits.
func (w *workload) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.started = time.Now()
	for zi, z := range zones {
		for i := range w.perZone {
			w.wg.Go(func() { w.worker(ctx, z, i, zi*w.perZone+i, rand.New(rand.NewPCG(uint64(zi), uint64(i)))) })
		}
	}
}

func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
	w.stopped = time.Now()
}

func (w *workload) record(o op) {
	w.mu.Lock()
	w.ops = append(w.ops, o)
	w.mu.Unlock()
}

// classify turns a call's error into the recorded result.
func classify(err error) (int, string) {
	if err == nil {
		return 0, "ok"
	}
	if ae, ok := errors.AsType[*client.Error](err); ok {
		return ae.StatusCode, strings.TrimSpace(fmt.Sprintf("%d %s", ae.StatusCode, ae.Code))
	}
	return 0, "transport"
}

// call runs f against node, recording it.
func (w *workload) call(zone, node, kind, keyID string, f func(c *client.Client) error) error {
	return w.callAs(-1, zone, node, kind, keyID, f)
}

// callAs is call made by worker id (porcupine's client id; -1 when the
// call is not a lifecycle operation).
func (w *workload) callAs(id int, zone, node, kind, keyID string, f func(c *client.Client) error) error {
	o := op{start: time.Now(), zone: zone, node: node, client: id, kind: kind, keyID: keyID}
	err := f(w.clients[node])
	o.end = time.Now()
	o.status, o.result = classify(err)
	w.record(o)
	return err
}

// lifecycle runs a lifecycle call (or a consistent get) made by worker id,
// recording the key it answered.
func (w *workload) lifecycle(ctx context.Context, id int, zone, node, kind, keyID string) error {
	_, err := w.lifecycleKey(ctx, id, zone, node, kind, keyID)
	return err
}

// lifecycleKey is lifecycle returning the key answered.
func (w *workload) lifecycleKey(ctx context.Context, id int, zone, node, kind, keyID string) (wire.Key, error) {
	o := op{start: time.Now(), zone: zone, node: node, client: id, kind: kind, keyID: keyID}
	c := w.clients[node]
	var k wire.Key
	var err error
	switch kind {
	case opGet:
		k, err = c.GetKey(ctx, keyID)
	case opRotate:
		k, err = c.RotateKey(ctx, keyID, client.IdempotencyKey(fmt.Sprintf("rot-%s-%d", keyID, w.seq.Add(1))))
	case opDisable:
		k, err = c.DisableKey(ctx, keyID)
	case opEnable:
		k, err = c.EnableKey(ctx, keyID)
	case opSchedule:
		// The server's default window (days): no key is purged during the run.
		k, err = c.ScheduleDeletion(ctx, keyID, 0)
	case opCancel:
		k, err = c.CancelDeletion(ctx, keyID)
	default:
		panic("lifecycle: unknown kind " + kind)
	}
	o.end = time.Now()
	o.status, o.result = classify(err)
	if err == nil {
		o.obs = observe(k)
	}
	w.record(o)
	return k, err
}

// lifecycleUntil retries a lifecycle call on the zone's nodes until it
// succeeds or is refused by the key's state, up to tries attempts.
func (w *workload) lifecycleUntil(ctx context.Context, id int, zone, node, kind, keyID string, tries int) (wire.Key, error) {
	nodes := zoneNodes[zone]
	ni := indexOf(nodes, node)
	var k wire.Key
	var err error
	for range tries {
		k, err = w.lifecycleKey(ctx, id, zone, nodes[ni%len(nodes)], kind, keyID)
		if err == nil || ctx.Err() != nil {
			return k, err
		}
		if st, _ := classify(err); st > 0 && st < 500 && st != 499 {
			return k, err
		}
		ni++
		time.Sleep(100 * time.Millisecond)
	}
	return k, err
}

// repairKeys reads every acknowledged key in its primary zone and brings
// it back to enabled (cancelling a deletion, undoing a disable), so that
// every ciphertext can be checked; the calls join the history. It also
// checks that each key holds a version per acknowledged rotation (and no
// more than the rotations that may have happened). It returns the number
// of keys it changed and of keys whose version count is wrong.
func (w *workload) repairKeys(ctx context.Context) (repaired, wrongVersions int) {
	id := w.perZone * len(zones) // a client of its own for porcupine
	w.mu.Lock()
	keys := slices.Clone(w.keys)
	okRot, maybeRot := map[string]uint32{}, map[string]uint32{}
	for _, o := range w.ops {
		if o.kind != opRotate {
			continue
		}
		switch {
		case o.ok():
			okRot[o.keyID]++
		case isLifecycleUnknown(o):
			maybeRot[o.keyID]++
		}
	}
	w.mu.Unlock()
	for _, key := range keys {
		k, err := w.lifecycleUntil(ctx, id, "zone-a", "a1", opGet, key, 10)
		if err != nil {
			w.t.Errorf("acknowledged key %s in zone-a: %v", key, err)
			continue
		}
		v := observe(k).versions
		if lo, hi := 1+okRot[key], 1+okRot[key]+maybeRot[key]; v < lo || v > hi {
			wrongVersions++
			w.t.Errorf("key %s holds %d versions after %d acknowledged rotations and %d of unknown outcome", key, v, okRot[key], maybeRot[key])
		}
		if k.State == "pending_deletion" {
			if k, err = w.lifecycleUntil(ctx, id, "zone-a", "a1", opCancel, key, 10); err != nil {
				w.t.Errorf("cancel deletion of %s: %v", key, err)
				continue
			}
		}
		if k.State == "disabled" {
			if _, err = w.lifecycleUntil(ctx, id, "zone-a", "a1", opEnable, key, 10); err != nil {
				w.t.Errorf("enable %s: %v", key, err)
				continue
			}
		}
		if k.State != "enabled" {
			repaired++
		}
	}
	return repaired, wrongVersions
}

func (w *workload) randomKey(r *rand.Rand) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.keys) == 0 {
		return ""
	}
	return w.keys[r.IntN(len(w.keys))]
}

func (w *workload) randomSealed(r *rand.Rand) (sealed, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sealed) == 0 {
		return sealed{}, false
	}
	return w.sealed[r.IntN(len(w.sealed))], true
}

// createUntilAnswered creates a key replicated to zone-b and zone-c with an
// idempotency key, retrying (through the zone's nodes in turn) until it is
// acknowledged or ctx ends; an unanswered create stays pending and is
// resolved after the run.
func (w *workload) createUntilAnswered(ctx context.Context, zone, node, name string) {
	idem := "nemesis-" + name
	w.mu.Lock()
	w.pending[idem] = name
	w.mu.Unlock()
	nodes := zoneNodes[zone]
	ni := indexOf(nodes, node)
	for ctx.Err() == nil {
		n := nodes[ni%len(nodes)]
		var k wire.Key
		err := w.call(zone, n, "create", "", func(c *client.Client) error {
			var err error
			k, err = c.CreateKey(ctx, wire.CreateKeyRequest{Name: name, ReplicaZones: []string{"zone-b", "zone-c"}},
				client.IdempotencyKey(idem))
			return err
		})
		if err == nil {
			w.mu.Lock()
			w.keys = append(w.keys, k.ID)
			delete(w.pending, idem)
			w.mu.Unlock()
			return
		}
		ni++
		time.Sleep(100 * time.Millisecond)
	}
}

// resolvePending retries the creates that were never answered, with their
// idempotency keys: each answer is an acknowledged creation.
func (w *workload) resolvePending(ctx context.Context) int {
	w.mu.Lock()
	names := make([]string, 0, len(w.pending))
	for _, n := range w.pending {
		names = append(names, n)
	}
	w.mu.Unlock()
	for _, n := range names {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		w.createUntilAnswered(cctx, "zone-a", "a1", n)
		cancel()
	}
	return len(names)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return 0
}

// worker is one client of a zone: it talks to one node of the zone and
// moves to the next after a failure without an answer (or a 5xx). Its
// lifecycle calls go to its own zone: in a replica zone they are
// forwarded to the primary zone.
func (w *workload) worker(ctx context.Context, zone string, id, cid int, r *rand.Rand) {
	nodes := zoneNodes[zone]
	ni := id
	for ctx.Err() == nil {
		node := nodes[ni%len(nodes)]
		var err error
		p := r.IntN(100)
		switch {
		case zone == "zone-a" && p < 4:
			w.createUntilAnswered(ctx, zone, node, fmt.Sprintf("w-%s-%d-%d", zone, id, w.seq.Add(1)))
		case p < 26:
			err = w.encrypt(ctx, zone, node, r)
		case p < 74:
			// Decrypts outnumber encrypts, as in envelope encryption, and
			// keep the final check (every ciphertext in every zone) short.
			err = w.decrypt(ctx, zone, node, r)
		case p < 82:
			err = w.dataKey(ctx, zone, node, r)
		case p < 90:
			// Consistent reads join the lifecycle history in the primary
			// zone; elsewhere they would read a replica.
			if zone == "zone-a" {
				err = w.lifecycle(ctx, cid, zone, node, opGet, w.randomKey(r))
			} else {
				err = w.decrypt(ctx, zone, node, r)
			}
		case p < 95:
			err = w.lifecycle(ctx, cid, zone, node, opRotate, w.randomKey(r))
		case p < 98:
			// Disable, then enable again (retried: a key left disabled
			// is enabled before the checks anyway).
			keyID := w.randomKey(r)
			if err = w.lifecycle(ctx, cid, zone, node, opDisable, keyID); err == nil {
				_, err = w.lifecycleUntil(ctx, cid, zone, node, opEnable, keyID, 5)
			}
		default:
			// Schedule the deletion, cancel it (the key comes back
			// disabled) and enable it.
			keyID := w.randomKey(r)
			if err = w.lifecycle(ctx, cid, zone, node, opSchedule, keyID); err == nil {
				if _, err = w.lifecycleUntil(ctx, cid, zone, node, opCancel, keyID, 5); err == nil {
					_, err = w.lifecycleUntil(ctx, cid, zone, node, opEnable, keyID, 5)
				}
			}
		}
		if err != nil {
			if st, _ := classify(err); st == 0 || st >= 500 {
				ni++
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

func (w *workload) encrypt(ctx context.Context, zone, node string, r *rand.Rand) error {
	keyID := w.randomKey(r)
	n := w.seq.Add(1)
	s := sealed{keyID: keyID, plaintext: fmt.Appendf(nil, "secret %d from %s", n, node),
		ctx: map[string]string{"zone": zone, "n": fmt.Sprint(n)}}
	return w.call(zone, node, "encrypt", keyID, func(c *client.Client) error {
		res, err := c.Encrypt(ctx, keyID, wire.EncryptRequest{Plaintext: s.plaintext, EncryptionContext: s.ctx})
		if err == nil {
			s.version, s.ct = res.KeyVersion, res.Ciphertext
			w.mu.Lock()
			w.sealed = append(w.sealed, s)
			w.mu.Unlock()
		}
		return err
	})
}

func (w *workload) decrypt(ctx context.Context, zone, node string, r *rand.Rand) error {
	s, ok := w.randomSealed(r)
	if !ok {
		return nil
	}
	return w.call(zone, node, "decrypt", s.keyID, func(c *client.Client) error {
		return opens(ctx, c, s)
	})
}

func (w *workload) dataKey(ctx context.Context, zone, node string, r *rand.Rand) error {
	keyID := w.randomKey(r)
	ec := map[string]string{"zone": zone, "datakey": fmt.Sprint(w.seq.Add(1))}
	return w.call(zone, node, "datakey", keyID, func(c *client.Client) error {
		res, err := c.GenerateDataKey(ctx, keyID, wire.GenerateDataKeyRequest{EncryptionContext: ec})
		if err == nil {
			w.mu.Lock()
			w.sealed = append(w.sealed, sealed{keyID: keyID, version: res.KeyVersion, plaintext: res.Plaintext, ctx: ec, ct: res.Ciphertext})
			w.mu.Unlock()
		}
		return err
	})
}

// window is a span of the run the summary reports on.
type window struct {
	name       string
	start, end time.Time
}

// rate is the successful operations per second that started in the window.
func (w *workload) rate(win window) (okOps, all int, perSec float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.ops {
		if o.start.Before(win.start) || !o.start.Before(win.end) {
			continue
		}
		all++
		if o.ok() {
			okOps++
		}
	}
	if d := win.end.Sub(win.start).Seconds(); d > 0 {
		perSec = float64(okOps) / d
	}
	return okOps, all, perSec
}

// okSince counts the successful operations that ended after t.
func (w *workload) okSince(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, o := range w.ops {
		if o.ok() && o.end.After(t) {
			n++
		}
	}
	return n
}

// table returns the operations by kind and result.
func (w *workload) table() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	counts := map[string]map[string]int{}
	results := map[string]bool{}
	for _, o := range w.ops {
		if counts[o.kind] == nil {
			counts[o.kind] = map[string]int{}
		}
		counts[o.kind][o.result]++
		results[o.result] = true
	}
	var kinds, res []string
	for k := range counts {
		kinds = append(kinds, k)
	}
	for r := range results {
		res = append(res, r)
	}
	sort.Strings(kinds)
	sort.Strings(res)
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %7s", "op", "total")
	for _, r := range res {
		fmt.Fprintf(&b, " %18s", r)
	}
	b.WriteString("\n")
	for _, k := range kinds {
		total := 0
		for _, n := range counts[k] {
			total += n
		}
		fmt.Fprintf(&b, "%-9s %7d", k, total)
		for _, r := range res {
			fmt.Fprintf(&b, " %18d", counts[k][r])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// opens decrypts s with c and checks what comes back.
func opens(ctx context.Context, c *client.Client, s sealed) error {
	r, err := c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: s.ct, EncryptionContext: s.ctx})
	if err != nil {
		return err
	}
	if string(r.Plaintext) != string(s.plaintext) || r.KeyID != s.keyID || r.KeyVersion != s.version {
		return fmt.Errorf("decrypt of a %s v%d ciphertext: got key %s v%d and another plaintext", s.keyID, s.version, r.KeyID, r.KeyVersion)
	}
	return nil
}
