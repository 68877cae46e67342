//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// purgeWindow is the deletion window of the keys the nemesis deletes for
// good: the suite's nodes accept windows this short
// (KZ_MIN_DELETION_WINDOW in the compose file).
const purgeWindow = 10 * time.Second

// doomed are multi-zone keys kept out of the workload, whose deletion
// the nemesis schedules while a zone is cut off: the leader of zone-a
// purges them during the fault and the cut-off zone learns of it when it
// comes back.
type doomed struct {
	keys        []string
	sealed      []sealed
	scheduledAt time.Time
	// Set by watchPurge once done is closed: how long after scheduledAt
	// each zone stopped holding every doomed key, or why it did not.
	done chan struct{}
	gone map[string]time.Duration
	err  error
}

// createDoomed creates n keys in zone-a replicated to zone-b and zone-c,
// encrypts under each, and waits until every zone decrypts them.
func (e *env) createDoomed(ctx context.Context, n int) *doomed {
	e.t.Helper()
	d := &doomed{}
	a1 := e.clients["a1"]
	for i := range n {
		k, err := a1.CreateKey(ctx, wire.CreateKeyRequest{Name: fmt.Sprintf("doomed-%d", i), ReplicaZones: []string{"zone-b", "zone-c"}},
			client.IdempotencyKey(fmt.Sprintf("doomed-%d", i)))
		if err != nil {
			e.t.Fatalf("create doomed key %d: %v", i, err)
		}
		d.keys = append(d.keys, k.ID)
		for j := range 3 {
			s := sealed{keyID: k.ID, plaintext: fmt.Appendf(nil, "doomed %d/%d", i, j), ctx: map[string]string{"doomed": fmt.Sprint(j)}}
			r, err := a1.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: s.plaintext, EncryptionContext: s.ctx})
			if err != nil {
				e.t.Fatalf("encrypt under doomed key %s: %v", k.ID, err)
			}
			s.version, s.ct = r.KeyVersion, r.Ciphertext
			d.sealed = append(d.sealed, s)
		}
	}
	eventually(e.t, time.Minute, "doomed keys decrypt in every zone", func() error {
		for _, s := range d.sealed {
			for _, z := range zones {
				if err := opens(ctx, e.clients[zoneNodes[z][0]], s); err != nil {
					return fmt.Errorf("%s: %w", z, err)
				}
			}
		}
		return nil
	})
	return d
}

// schedule schedules the deletion of every doomed key in zone-a.
func (e *env) scheduleDoomed(ctx context.Context, d *doomed) {
	e.t.Helper()
	d.scheduledAt = time.Now()
	for _, id := range d.keys {
		eventually(e.t, time.Minute, "schedule the deletion of "+id, func() error {
			var err error
			for _, n := range zoneNodes["zone-a"] {
				if _, err = e.probes[n].ScheduleDeletion(ctx, id, purgeWindow); err == nil {
					return nil
				}
				if ae, ok := errors.AsType[*client.Error](err); ok && ae.Code == wire.CodeInvalidState {
					// An earlier attempt whose answer was lost went through.
					return nil
				}
			}
			return err
		})
	}
	e.t.Logf("deletion of %d doomed keys scheduled in %v", len(d.keys), purgeWindow)
	e.watchPurge(ctx, d, 5*time.Minute)
}

// watchPurge polls every zone, from the scheduling on, until none holds a
// doomed key, recording when each zone let go of the last one.
func (e *env) watchPurge(ctx context.Context, d *doomed, timeout time.Duration) {
	d.done = make(chan struct{})
	d.gone = map[string]time.Duration{}
	go func() {
		defer close(d.done)
		var last error
		for time.Since(d.scheduledAt) < timeout {
			for _, z := range zones {
				if _, ok := d.gone[z]; ok {
					continue
				}
				var err error
				for _, id := range d.keys {
					if err = e.keyGone(ctx, z, id); err != nil {
						last = err
						break
					}
				}
				if err == nil {
					d.gone[z] = time.Since(d.scheduledAt)
				}
			}
			if len(d.gone) == len(zones) {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		d.err = fmt.Errorf("not gone from every zone %v after the deletion was scheduled: %v", timeout, last)
	}()
}

// checkPurged waits until no zone holds a doomed key any more, then checks
// that none of their ciphertexts decrypts anywhere. It returns the number
// of failures.
func (e *env) checkPurged(ctx context.Context, d *doomed) int {
	e.t.Helper()
	if d.done == nil {
		e.t.Error("the deletion of the doomed keys was never scheduled")
		return 1
	}
	failures := 0
	<-d.done
	if d.err != nil {
		e.t.Errorf("doomed keys: %v", d.err)
		failures++
	}
	for _, s := range d.sealed {
		for _, z := range zones {
			for _, n := range zoneNodes[z] {
				_, err := e.clients[n].Decrypt(ctx, wire.DecryptRequest{Ciphertext: s.ct, EncryptionContext: s.ctx})
				ae, ok := errors.AsType[*client.Error](err)
				switch {
				case err == nil:
					failures++
					e.t.Errorf("a ciphertext of purged key %s still decrypts on %s", s.keyID, n)
				case ok && (ae.StatusCode == 404 || ae.StatusCode == 422):
				default:
					failures++
					e.t.Errorf("decrypt of a ciphertext of purged key %s on %s: %v, want 404 or 422", s.keyID, n, err)
				}
			}
		}
	}
	return failures
}

// keyGone returns nil when a node of the zone answers 404 for the key.
func (e *env) keyGone(ctx context.Context, zone, id string) error {
	var err error
	for _, n := range zoneNodes[zone] {
		_, err = e.probes[n].GetKey(ctx, id)
		if ae, ok := errors.AsType[*client.Error](err); ok && ae.StatusCode == 404 {
			return nil
		}
		if err == nil {
			return fmt.Errorf("%s still holds key %s", zone, id)
		}
	}
	return fmt.Errorf("%s: key %s: %w", zone, id, err)
}
