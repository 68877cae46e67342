package test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// replicatedDigest is what `keyzone cluster verify` compares between a
// primary key and its replicas.
func replicatedDigest(t *testing.T, k *fsm.Key) string {
	t.Helper()
	return fsm.ReplicatedDigest(k)
}

// waitConverged waits until every running node of every replica zone
// holds the primary's current state of key id (or, once purged, none).
func waitConverged(t *testing.T, zones []*clustertest.Cluster, primary *clustertest.Cluster, id string) {
	t.Helper()
	clustertest.WaitFor(t, 30*time.Second, "replicas of "+id+" to converge", func() bool {
		want, live := primary.Leader().Server().FSM().Key(id)
		for _, z := range zones {
			if z == primary {
				continue
			}
			inReplicaSet := live && slices.Contains(want.ReplicaZones, z.Zone())
			for _, n := range z.Nodes {
				s := n.Server()
				if s == nil {
					continue
				}
				got, ok := s.FSM().Key(id)
				if ok != inReplicaSet || (ok && replicatedDigest(t, got) != replicatedDigest(t, want)) {
					return false
				}
			}
		}
		return true
	})
}

func zoneClient(t *testing.T, z *clustertest.Cluster, i int) *client.Client {
	t.Helper()
	cl, err := client.New(z.Nodes[i].Addr(), z.Token)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestMultiZone_CryptoServedInEveryZone(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b", "zone-c"}, clustertest.Options{})
	a, b, c := zones[0], zones[1], zones[2]
	ctx := testCtx(t, 90*time.Second)
	org := a.Org.ID

	k, err := a.Followers()[0].Server().Keys().CreateKey(ctx, keys.CreateParams{
		Organization: org, Name: "global", ReplicaZones: []string{"zone-c", "zone-b", "zone-b"}})
	if err != nil {
		t.Fatalf("create multi-zone key: %v", err)
	}
	if k.PrimaryZone != "zone-a" || !slices.Equal(k.ReplicaZones, []string{"zone-b", "zone-c"}) {
		t.Fatalf("got primary %s replicas %v, want zone-a with [zone-b zone-c]", k.PrimaryZone, k.ReplicaZones)
	}
	waitConverged(t, zones, a, k.ID)

	// Encrypt in A, decrypt in B and C; encrypt in C, decrypt in A and B.
	pt := []byte("payload for every zone")
	ctxMap := map[string]string{"tenant": "42"}
	encA, err := zoneClient(t, a, 1).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, EncryptionContext: ctxMap})
	if err != nil {
		t.Fatal(err)
	}
	encC, err := zoneClient(t, c, 2).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt, EncryptionContext: ctxMap})
	if err != nil {
		t.Fatalf("encrypt in a replica zone: %v", err)
	}
	for _, z := range zones {
		for i := range z.Nodes {
			for _, ct := range [][]byte{encA.Ciphertext, encC.Ciphertext} {
				dec, err := zoneClient(t, z, i).Decrypt(ctx, wire.DecryptRequest{Ciphertext: ct, EncryptionContext: ctxMap})
				if err != nil || !bytes.Equal(dec.Plaintext, pt) {
					t.Fatalf("decrypt in %s node %d: %v", z.Zone(), i, err)
				}
			}
		}
	}
	// A replica refuses lifecycle changes and names its primary zone.
	_, err = b.Nodes[0].Server().Keys().DisableKey(ctx, keys.KeyRef{Organization: org, KeyID: k.ID})
	var np *fsm.NotPrimaryError
	if !errors.As(err, &np) || np.PrimaryZone != "zone-a" {
		t.Fatalf("disable in a replica zone: got %v, want NotPrimaryError naming zone-a", err)
	}
	// Disable in A: B and C refuse crypto once they apply it.
	if _, err := a.Nodes[0].Server().Keys().DisableKey(ctx, keys.KeyRef{Organization: org, KeyID: k.ID}); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	for _, z := range []*clustertest.Cluster{b, c} {
		_, err := zoneClient(t, z, 0).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: pt})
		wantAPIError(t, err, 409, "key_disabled")
	}
}

// TestMultiZone_RotationIsTwoPhase rotates in the primary zone and checks
// that no zone ever encrypts under a version another zone lacks, and that
// every zone moves to the new version within a bounded time.
func TestMultiZone_RotationIsTwoPhase(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b"}, clustertest.Options{})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 90*time.Second)
	org := a.Org.ID
	svcA := a.Leader().Server().Keys()
	k, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "rot", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	clB := zoneClient(t, b, 0)
	var cts [][]byte
	for round := uint32(2); round <= 6; round++ {
		r, err := svcA.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}})
		if err != nil {
			t.Fatalf("rotate to %d: %v", round, err)
		}
		if r.CurrentVersion == round {
			// Promoted already: then zone-b must have acknowledged it.
			if got := a.Leader().Server().FSM().ReplicationOf("zone-b").Acked; got < r.PendingSeq {
				t.Fatalf("version %d encrypts before zone-b acknowledged it", round)
			}
		} else if r.PendingVersion != round || !slices.Equal(r.PendingZones, []string{"zone-b"}) {
			t.Fatalf("after rotate: current %d pending %d waiting %v", r.CurrentVersion, r.PendingVersion, r.PendingZones)
		}
		// Every ciphertext any zone makes meanwhile decrypts in the other.
		clustertest.WaitFor(t, 20*time.Second, "zone-b to encrypt with the new version", func() bool {
			for _, z := range zones {
				enc, err := zoneClient(t, z, int(round)%3).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte{byte(round)}})
				if err != nil {
					t.Fatalf("encrypt in %s: %v", z.Zone(), err)
				}
				cts = append(cts, enc.Ciphertext)
				for _, other := range zones {
					if _, err := zoneClient(t, other, 0).Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext}); err != nil {
						t.Fatalf("a ciphertext of %s v%d does not decrypt in %s: %v", z.Zone(), enc.KeyVersion, other.Zone(), err)
					}
				}
			}
			enc, err := clB.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
			return err == nil && enc.KeyVersion == round
		})
	}
	waitConverged(t, zones, a, k.ID)
	for _, ct := range cts {
		if _, err := clB.Decrypt(ctx, wire.DecryptRequest{Ciphertext: ct}); err != nil {
			t.Fatalf("old ciphertext no longer decrypts in zone-b: %v", err)
		}
	}
}

// TestMultiZone_CutOffZoneConverges stops every node of a replica zone,
// changes the key in the primary zone, and checks that the primary keeps
// encrypting with the previous version while the zone is away, and that
// the zone converges when it comes back.
func TestMultiZone_CutOffZoneConverges(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b"}, clustertest.Options{})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 120*time.Second)
	org := a.Org.ID
	svcA := a.Leader().Server().Keys()
	ref := keys.KeyRef{Organization: org}
	k, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "cut", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "gone", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	waitConverged(t, zones, a, gone.ID)

	b.Shutdown()
	// A zone that is away is still a zone of the deployment: keys can be
	// created with replicas there, and reach it when it comes back.
	born, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "born-while-away", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatalf("create with a replica zone that is away: %v", err)
	}
	ref.KeyID = k.ID
	r, err := svcA.RotateKey(ctx, keys.RotateParams{KeyRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	if r.CurrentVersion != 1 || r.PendingVersion != 2 {
		t.Fatalf("rotation with zone-b away: current %d pending %d, want 1 and 2", r.CurrentVersion, r.PendingVersion)
	}
	if lag := scrapeMetric(t, a.Leader().Addr(), `keyzone_replication_lag_entries{zone="zone-b"}`); lag < 1 {
		t.Fatalf("lag of zone-b while it is away: %v entries, want at least 1", lag)
	}
	enc, err := zoneClient(t, a, 0).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("while b is away")})
	if err != nil || enc.KeyVersion != 1 {
		t.Fatalf("encrypt while zone-b is away: version %d, %v; want version 1", enc.KeyVersion, err)
	}
	if _, err := svcA.UpdateKey(ctx, keys.UpdateParams{KeyRef: ref, Description: ptr("changed while b was away")}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcA.ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: keys.KeyRef{Organization: org, KeyID: gone.ID}, PendingWindow: time.Second}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 20*time.Second, "the purge in zone-a", func() bool { return a.Leader().Server().FSM().IsTombstoned(gone.ID) })

	for _, n := range b.Nodes {
		b.Restart(n)
	}
	b.WaitReady(30 * time.Second)
	waitConverged(t, zones, a, k.ID)
	waitConverged(t, zones, a, gone.ID)
	waitConverged(t, zones, a, born.ID)
	clustertest.WaitFor(t, 20*time.Second, "zone-b's lag to reach 0", func() bool {
		return scrapeMetric(t, a.Leader().Addr(), `keyzone_replication_lag_entries{zone="zone-b"}`) == 0
	})
	got, _ := a.Leader().Server().FSM().Key(k.ID)
	if got.CurrentVersion != 2 || got.PendingVersion != 0 {
		t.Fatalf("after zone-b came back: current %d pending %d, want 2 and 0", got.CurrentVersion, got.PendingVersion)
	}
	for _, n := range b.Nodes {
		if !n.Server().FSM().IsTombstoned(gone.ID) {
			t.Fatalf("%s: the key purged while zone-b was away is not tombstoned", n.ID)
		}
		if _, err := zoneClient(t, b, 0).Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext}); err != nil {
			t.Fatalf("zone-b can't decrypt what zone-a made while it was away: %v", err)
		}
	}
}

// TestMultiZone_ReplicaSetChanges adds and removes a replica zone.
func TestMultiZone_ReplicaSetChanges(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b", "zone-c"}, clustertest.Options{})
	a, c := zones[0], zones[2]
	ctx := testCtx(t, 60*time.Second)
	org := a.Org.ID
	svcA := a.Nodes[2].Server().Keys()
	k, err := svcA.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "grow", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := keys.KeyRef{Organization: org, KeyID: k.ID}
	if _, err := svcA.RotateKey(ctx, keys.RotateParams{KeyRef: ref}); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	// A zone added later gets every version.
	if _, err := svcA.AddReplica(ctx, ref, "zone-c"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
	got, _ := c.Nodes[0].Server().FSM().Key(k.ID)
	if len(got.Versions) != 2 {
		t.Fatalf("zone-c got %d versions, want 2", len(got.Versions))
	}
	if _, err := svcA.AddReplica(ctx, ref, "zone-x"); !errors.Is(err, keys.ErrInvalidArgument) {
		t.Fatalf("add an unknown zone: got %v, want ErrInvalidArgument", err)
	}
	// A zone removed drops its copy.
	if _, err := svcA.RemoveReplica(ctx, ref, "zone-b"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)
}

func ptr[T any](v T) *T { return &v }

// TestMultiZone_LifecycleThroughReplicaZone makes lifecycle changes through
// a node of a replica zone: they land on the primary zone. With the primary
// zone down they are refused with 409 naming it, while crypto goes on.
func TestMultiZone_LifecycleThroughReplicaZone(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b"}, clustertest.Options{})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 90*time.Second)
	clA := zoneClient(t, a, 0)
	k, err := clA.CreateKey(ctx, wire.CreateKeyRequest{Name: "via-b", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)

	clB := zoneClient(t, b, 1)
	got, err := clB.GetKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PrimaryZone != "zone-a" || got.ReplicaSeq == 0 {
		t.Fatalf("replica in zone-b: primary %q replica seq %d", got.PrimaryZone, got.ReplicaSeq)
	}
	// If-Match with the revision read in zone-b holds in zone-a.
	d, err := clB.DisableKey(ctx, k.ID, client.IfMatch(got.Revision))
	if err != nil {
		t.Fatalf("disable through zone-b: %v", err)
	}
	if d.State != "disabled" {
		t.Fatalf("got state %s, want disabled", d.State)
	}
	if k, _ := a.Leader().Server().FSM().Key(k.ID); k.State != fsm.KeyStateDisabled {
		t.Fatalf("the primary is %s after a disable through zone-b", k.State)
	}
	if _, err := clB.EnableKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	r, err := clB.RotateKey(ctx, k.ID, client.IdempotencyKey("rotate-via-b"))
	if err != nil {
		t.Fatalf("rotate through zone-b: %v", err)
	}
	r2, err := zoneClient(t, b, 2).RotateKey(ctx, k.ID, client.IdempotencyKey("rotate-via-b"))
	if err != nil || max(r2.CurrentVersion, r2.PendingVersion) != max(r.CurrentVersion, r.PendingVersion) {
		t.Fatalf("a retried rotation through zone-b rotated again: %+v then %+v (%v)", r, r2, err)
	}
	waitConverged(t, zones, a, k.ID)

	// Zone-a goes away: lifecycle through zone-b is refused naming it;
	// crypto in zone-b goes on.
	a.Shutdown()
	_, err = clB.DisableKey(ctx, k.ID)
	wantAPIError(t, err, 409, "not_primary")
	var apiErr *client.Error
	if errors.As(err, &apiErr) && !strings.Contains(apiErr.Message, "zone-a") {
		t.Fatalf("the refusal does not name the primary zone: %q", apiErr.Message)
	}
	enc, err := clB.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("still served")})
	if err != nil {
		t.Fatalf("encrypt in zone-b with zone-a down: %v", err)
	}
	if _, err := zoneClient(t, b, 0).Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext}); err != nil {
		t.Fatalf("decrypt in zone-b with zone-a down: %v", err)
	}
}

// TestMultiZone_LeaderKilledDuringRotations stops the primary zone's leader
// while rotations are in flight. Everything the replica zone ever holds
// must be held, identically, by the primary zone once it settles: a
// replica never gets a version the primary lost or replaced, and every
// ciphertext either zone made decrypts in both.
func TestMultiZone_LeaderKilledDuringRotations(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b"}, clustertest.Options{})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 120*time.Second)
	org := a.Org.ID
	k, err := a.Nodes[0].Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: "chaos", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)

	stop := make(chan struct{})
	done := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); <-done }
	// Before the zones shut down, also when the test fails early.
	t.Cleanup(halt)
	seen := map[uint32][]byte{} // every version zone-b held, by number
	var conflict string
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, n := range b.Nodes {
				srv := n.Server()
				if srv == nil {
					continue
				}
				rk, ok := srv.FSM().Key(k.ID)
				if !ok {
					continue
				}
				for _, v := range rk.Versions {
					if w, ok := seen[v.Number]; ok && !bytes.Equal(w, v.Wrapped) && conflict == "" {
						conflict = n.ID
					}
					seen[v.Number] = v.Wrapped
				}
			}
		}
	}()
	var cts [][]byte
	for i := 0; i < 12; i++ {
		if i == 4 {
			old := a.Leader()
			t.Logf("stopping zone-a's leader %s", old.ID)
			a.Stop(old)
			defer a.Restart(old)
		}
		var svc *keys.Service
		for _, n := range a.Nodes {
			if s := n.Server(); s != nil {
				svc = s.Keys()
			}
		}
		_, err := svc.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}})
		if err != nil && !errors.Is(err, fsm.ErrRotationPending) {
			t.Logf("rotation %d: %v", i, err)
		}
		for _, z := range zones {
			for j := range z.Nodes {
				if z.Nodes[j].Server() == nil {
					continue
				}
				enc, err := zoneClient(t, z, j).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte{byte(i)}})
				if err != nil {
					t.Fatalf("encrypt in %s: %v", z.Zone(), err)
				}
				cts = append(cts, enc.Ciphertext)
			}
		}
	}
	waitConverged(t, zones, a, k.ID)
	halt()
	if conflict != "" {
		t.Fatalf("%s held two different materials under one version number", conflict)
	}
	final, _ := a.Leader().Server().FSM().Key(k.ID)
	for n, w := range seen {
		v, ok := final.Version(n)
		if !ok || !bytes.Equal(v.Wrapped, w) {
			t.Fatalf("zone-b held version %d, which the primary zone does not hold as such", n)
		}
	}
	if len(final.Versions) < 2 {
		t.Fatalf("no rotation succeeded: %d versions", len(final.Versions))
	}
	for _, z := range zones {
		for _, ct := range cts {
			if _, err := zoneClient(t, z, 1).Decrypt(ctx, wire.DecryptRequest{Ciphertext: ct}); err != nil {
				t.Fatalf("a ciphertext made during the rotations does not decrypt in %s: %v", z.Zone(), err)
			}
		}
	}
}

// TestMultiZone_UpdatePrimary hands a key over from zone-a to zone-b
// through a node of zone-c; lifecycle changes then land on zone-b, also
// when sent to zone-a. With zone-b down, zone-c takes the key over by
// force, and zone-b becomes a replica again when it comes back.
func TestMultiZone_UpdatePrimary(t *testing.T) {
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b", "zone-c"}, clustertest.Options{})
	a, b, c := zones[0], zones[1], zones[2]
	ctx := testCtx(t, 120*time.Second)
	k, err := zoneClient(t, a, 0).CreateKey(ctx, wire.CreateKeyRequest{Name: "moving", ReplicaZones: []string{"zone-b", "zone-c"}})
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, zones, a, k.ID)

	moved, err := zoneClient(t, c, 1).UpdatePrimary(ctx, k.ID, "zone-b", false)
	if err != nil {
		t.Fatalf("update-primary through zone-c: %v", err)
	}
	if moved.PrimaryZone != "zone-b" || !slices.Equal(moved.ReplicaZones, []string{"zone-a", "zone-c"}) {
		t.Fatalf("after update-primary: primary %s replicas %v", moved.PrimaryZone, moved.ReplicaZones)
	}
	waitConverged(t, zones, b, k.ID)
	// A change sent to the old primary zone lands on the new one.
	if _, err := zoneClient(t, a, 2).RotateKey(ctx, k.ID); err != nil {
		t.Fatalf("rotate through the old primary zone: %v", err)
	}
	clustertest.WaitFor(t, 20*time.Second, "version 2 to encrypt in every zone", func() bool {
		for _, z := range zones {
			enc, err := zoneClient(t, z, 0).Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("v2")})
			if err != nil || enc.KeyVersion != 2 {
				return false
			}
		}
		return true
	})
	if pk, _ := b.Leader().Server().FSM().Key(k.ID); pk.IsReplicaIn("zone-b") || len(pk.Versions) != 2 {
		t.Fatalf("zone-b is not the primary holding version 2: %+v", pk)
	}

	// zone-b goes away; zone-c takes over by force.
	b.Shutdown()
	_, err = zoneClient(t, c, 0).DisableKey(ctx, k.ID)
	wantAPIError(t, err, 409, "not_primary")
	// A takeover is for a zone gone from the pool: wait until zone-c
	// no longer sees zone-b.
	clustertest.WaitFor(t, 20*time.Second, "zone-b to leave zone-c's view", func() bool {
		for _, m := range c.Nodes[0].Server().Node().Members() {
			if m.Zone == "zone-b" {
				return false
			}
		}
		return true
	})
	taken, err := zoneClient(t, c, 0).UpdatePrimary(ctx, k.ID, "zone-c", true)
	if err != nil {
		t.Fatalf("forced takeover by zone-c: %v", err)
	}
	if taken.PrimaryZone != "zone-c" {
		t.Fatalf("after the takeover the primary is %s", taken.PrimaryZone)
	}
	waitConverged(t, zones, c, k.ID) // zone-a learns the new primary
	if _, err := zoneClient(t, a, 0).DisableKey(ctx, k.ID); err != nil {
		t.Fatalf("disable through zone-a after the takeover: %v", err)
	}
	for _, n := range b.Nodes {
		b.Restart(n)
	}
	b.WaitReady(30 * time.Second)
	waitConverged(t, zones, c, k.ID)
	for _, n := range b.Nodes {
		got, _ := n.Server().FSM().Key(k.ID)
		if got == nil || got.PrimaryZone != "zone-c" || got.State != fsm.KeyStateDisabled {
			t.Fatalf("%s after coming back: %+v, want a disabled replica of zone-c", n.ID, got)
		}
	}
}

// scrapeMetric returns the value of one sample of a node's /metrics.
func scrapeMetric(t *testing.T, addr, sample string) float64 {
	t.Helper()
	_, _, samples := scrape(t, addr)
	v, ok := samples[sample]
	if !ok {
		t.Fatalf("no sample %s in /metrics of %s", sample, addr)
	}
	return v
}
