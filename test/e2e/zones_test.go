//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// sealed is an acknowledged encryption and what it must decrypt to.
type sealed struct {
	keyID     string
	version   uint32
	plaintext []byte
	ctx       map[string]string
	ct        []byte
}

// TestZonesSurviveLeaderKill brings the nine containers up and runs
// leaderKillScenario alone: the short way to try a change against real
// containers. `make e2e` runs the scenario as the first part of
// TestNemesis instead, sparing a second start of nine containers.
func TestZonesSurviveLeaderKill(t *testing.T) {
	start := time.Now()
	e := startEnv(t)
	e.ready(3 * time.Minute)
	t.Logf("nine nodes healthy after %v", time.Since(start).Round(time.Millisecond))
	leaderKillScenario(t, e)
	e.checkNoRestartsOrPanics()
	t.Logf("scenario done in %v", time.Since(start).Round(time.Millisecond))
}

// leaderKillScenario replicates a key across the three zones, rotates it,
// kills zone-a's leader with `docker kill`, writes through another zone-a
// node, and checks that nothing acknowledged was lost and that the killed
// node, started again, catches up from its own state.
func leaderKillScenario(t *testing.T, e *env) {
	ctx := context.Background()
	a1, b1 := e.clients["a1"], e.clients["b1"]

	// Every zone sees the other two through gossip, with all their nodes.
	eventually(t, time.Minute, "zones see each other", func() error {
		for _, z := range zones {
			zs, err := e.clients[zoneNodes[z][0]].Zones(ctx)
			if err != nil {
				return err
			}
			if len(zs.Zones) != 3 {
				return fmt.Errorf("%s sees %d zones", z, len(zs.Zones))
			}
			for _, s := range zs.Zones {
				if len(s.Nodes) != 3 {
					return fmt.Errorf("%s sees %d nodes in %s", z, len(s.Nodes), s.Name)
				}
			}
		}
		return nil
	})

	// A multi-zone key created in zone-a, encrypted there, decrypted in b and c.
	key, err := a1.CreateKey(ctx, wire.CreateKeyRequest{Name: "orders", ReplicaZones: []string{"zone-b", "zone-c"}},
		client.IdempotencyKey("e2e-create-orders"))
	if err != nil {
		t.Fatal(err)
	}
	if key.PrimaryZone != "zone-a" || !slices.Equal(key.ReplicaZones, []string{"zone-b", "zone-c"}) {
		t.Fatalf("created key: primary %q replicas %v", key.PrimaryZone, key.ReplicaZones)
	}
	keyIDs := []string{key.ID}
	var sealedAll []sealed
	seal := func(c *client.Client, keyID, text string) sealed {
		t.Helper()
		s := sealed{keyID: keyID, plaintext: []byte(text), ctx: map[string]string{"app": "e2e", "n": text}}
		r, err := c.Encrypt(ctx, keyID, wire.EncryptRequest{Plaintext: s.plaintext, EncryptionContext: s.ctx})
		if err != nil {
			t.Fatalf("encrypt %q: %v", text, err)
		}
		s.version, s.ct = r.KeyVersion, r.Ciphertext
		sealedAll = append(sealedAll, s)
		return s
	}
	opens := func(c *client.Client, s sealed) error {
		r, err := c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: s.ct, EncryptionContext: s.ctx})
		if err != nil {
			return err
		}
		if !bytes.Equal(r.Plaintext, s.plaintext) || r.KeyID != s.keyID || r.KeyVersion != s.version {
			return fmt.Errorf("decrypt of %q: got %q, key %s v%d", s.plaintext, r.Plaintext, r.KeyID, r.KeyVersion)
		}
		return nil
	}
	v1 := seal(a1, key.ID, "order #1001")
	for _, n := range []string{"b1", "c1"} {
		d := eventually(t, 30*time.Second, "decrypt in "+n, func() error { return opens(e.clients[n], v1) })
		t.Logf("zone-a ciphertext decrypts in %s after %v", n, d.Round(time.Millisecond))
	}

	// Rotate in zone-a: zone-b encrypts under version 2 once every replica holds it.
	rot, err := a1.RotateKey(ctx, key.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rotate answered current version %d", rot.CurrentVersion)
	d := eventually(t, 30*time.Second, "zone-b encrypts with version 2", func() error {
		r, err := b1.Encrypt(ctx, key.ID, wire.EncryptRequest{Plaintext: []byte("probe")})
		if err != nil {
			return err
		}
		if r.KeyVersion != 2 {
			return fmt.Errorf("zone-b encrypts with version %d", r.KeyVersion)
		}
		return nil
	})
	t.Logf("zone-b encrypts with version 2 after %v", d.Round(time.Millisecond))
	v2 := seal(b1, key.ID, "order #1002")
	for _, n := range []string{"a1", "c1"} {
		if err := opens(e.clients[n], v1); err != nil {
			t.Errorf("v1 in %s: %v", n, err)
		}
		eventually(t, 30*time.Second, "v2 in "+n, func() error { return opens(e.clients[n], v2) })
	}

	// More keys, so that the kill happens with several in the log.
	for i := range 5 {
		k, err := e.clients[zoneNodes["zone-a"][i%3]].CreateKey(ctx,
			wire.CreateKeyRequest{Name: fmt.Sprintf("pre-kill-%d", i), ReplicaZones: []string{"zone-b"}},
			client.IdempotencyKey(fmt.Sprintf("e2e-pre-kill-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		keyIDs = append(keyIDs, k.ID)
		seal(a1, k.ID, fmt.Sprintf("pre-kill secret %d", i))
	}

	// Kill zone-a's leader.
	st, err := a1.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := st.Leader
	if !slices.Contains(zoneNodes["zone-a"], leader) {
		t.Fatalf("zone-a's leader: got %q", leader)
	}
	var survivor string
	for _, n := range zoneNodes["zone-a"] {
		if n != leader {
			survivor = n
			break
		}
	}
	sc := e.clients[survivor]
	leaderID := e.container(leader)
	killedAt := time.Now()
	e.mustDocker(time.Minute, "kill", leaderID)
	t.Logf("killed zone-a's leader %s (term %d); writing through %s", leader, st.Term, survivor)

	var during wire.Key
	d = eventually(t, time.Minute, "create through "+survivor+" after the kill", func() error {
		var err error
		during, err = sc.CreateKey(ctx, wire.CreateKeyRequest{Name: "after-kill", ReplicaZones: []string{"zone-b", "zone-c"}},
			client.IdempotencyKey("e2e-after-kill"))
		return err
	})
	t.Logf("first create after the kill acknowledged %v after the kill (%v of retries)",
		time.Since(killedAt).Round(time.Millisecond), d.Round(time.Millisecond))
	keyIDs = append(keyIDs, during.ID)
	st2, err := sc.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Leader == leader || st2.Leader == "" {
		t.Fatalf("after the kill zone-a's leader is %q", st2.Leader)
	}
	t.Logf("zone-a's new leader: %s (term %d)", st2.Leader, st2.Term)
	duringSealed := seal(sc, during.ID, "written while "+leader+" was down")

	// Nothing acknowledged is lost: every key is in zone-a, every ciphertext opens.
	checkKeys := func(c *client.Client, where string, opts ...client.CallOption) error {
		for _, id := range keyIDs {
			k, err := c.GetKey(ctx, id, opts...)
			if err != nil {
				return fmt.Errorf("%s: key %s: %w", where, id, err)
			}
			if k.PrimaryZone != "zone-a" {
				return fmt.Errorf("%s: key %s: primary %q", where, id, k.PrimaryZone)
			}
		}
		return nil
	}
	if err := checkKeys(sc, survivor); err != nil {
		t.Fatal(err)
	}
	if k, err := sc.GetKey(ctx, key.ID); err != nil || k.CurrentVersion != 2 {
		t.Fatalf("rotated key after the kill: version %d, %v", k.CurrentVersion, err)
	}
	for _, s := range sealedAll {
		if err := opens(sc, s); err != nil {
			t.Errorf("after the kill, in %s: %v", survivor, err)
		}
	}
	for _, n := range []string{"b1", "c1"} {
		eventually(t, 30*time.Second, "key created after the kill decrypts in "+n, func() error {
			return opens(e.clients[n], duringSealed)
		})
	}

	// Restart the killed node: it must catch up with what it missed.
	e.mustDocker(time.Minute, "start", leaderID)
	e.waitHealthy(2*time.Minute, leader)
	back := e.clients[leader]
	d = eventually(t, time.Minute, leader+" catches up", func() error {
		// Stale: from the restarted node's own state, without asking the leader.
		if err := checkKeys(back, leader, client.Stale()); err != nil {
			return err
		}
		for _, s := range sealedAll {
			if err := opens(back, s); err != nil {
				return fmt.Errorf("%s: %w", leader, err)
			}
		}
		return nil
	})
	t.Logf("%s caught up %v after it was healthy again", leader, d.Round(time.Millisecond))
	stBack, err := back.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stBack.Leader != st2.Leader {
		t.Errorf("%s sees leader %q, %s sees %q", leader, stBack.Leader, survivor, st2.Leader)
	}

	// Every zone holds the same state of every multi-zone key.
	eventually(t, time.Minute, "zones converge", func() error { return digestsAgree(ctx, e) })
}

// digestsAgree compares every zone's digest of every multi-zone key.
func digestsAgree(ctx context.Context, e *env) error {
	want := map[string]wire.KeyDigest{}
	var reports []wire.DigestReport
	for _, z := range zones {
		r, err := e.ops[zoneNodes[z][0]].Digest(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", z, err)
		}
		reports = append(reports, r)
		for _, k := range r.Keys {
			if r.Zone == k.PrimaryZone {
				want[k.KeyID] = k
			}
		}
	}
	var errs []error
	for _, r := range reports {
		for _, k := range r.Keys {
			if w, ok := want[k.KeyID]; !ok || w.Digest != k.Digest {
				errs = append(errs, fmt.Errorf("%s: key %s differs from its primary zone's", r.Zone, k.KeyID))
			}
		}
		for id, w := range want {
			if slices.Contains(w.ReplicaZones, r.Zone) && !slices.ContainsFunc(r.Keys, func(k wire.KeyDigest) bool { return k.KeyID == id }) {
				errs = append(errs, fmt.Errorf("%s: replica of %s missing", r.Zone, id))
			}
		}
	}
	return errors.Join(errs...)
}

// checkNoRestartsOrPanics checks that every container runs, none restarted
// on its own (the compose file sets no restart policy) and none logged a
// panic.
func (e *env) checkNoRestartsOrPanics() {
	e.t.Helper()
	for _, n := range allNodes() {
		id := e.container(n)
		st := e.mustDocker(time.Minute, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", id)
		if st != "0 running" {
			e.t.Errorf("%s: restart count and state %q, want 0 running", n, st)
		}
		logs, err := e.run(time.Minute, "docker", "logs", id)
		if err != nil {
			e.t.Errorf("logs of %s: %v", n, err)
			continue
		}
		if strings.Contains(logs, "panic:") || strings.Contains(logs, "fatal error:") {
			e.t.Errorf("%s logged a panic:\n%s", n, logs)
		}
	}
}
