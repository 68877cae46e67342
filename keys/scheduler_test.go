package keys_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// TestScheduler_Rotation: the leader rotates a due key once per period
// and moves next_rotation_at by exactly one period; manual rotations
// leave the schedule alone; a disabled key is skipped until enabled.
func TestScheduler_Rotation(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	s := svc(c, 1)
	period := 2 * time.Second
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "auto", RotationPeriod: period})
	off := mustCreate(t, ctx, s, keys.CreateParams{Name: "off", RotationPeriod: time.Second})
	off, err := s.DisableKey(ctx, keys.KeyRef{Organization: org, KeyID: off.ID})
	if err != nil {
		t.Fatal(err)
	}
	next := k.RotationPolicy.NextRotationAt
	if next != k.CreatedAt+int64(period) {
		t.Fatalf("next rotation at %d, want created at + period = %d", next, k.CreatedAt+int64(period))
	}
	ref := keys.KeyRef{Organization: org, KeyID: k.ID}
	for i := range 2 {
		m, err := svc(c, i).RotateKey(ctx, keys.RotateParams{KeyRef: ref})
		if err != nil {
			t.Fatal(err)
		}
		if m.RotationPolicy != k.RotationPolicy {
			t.Fatalf("manual rotation %d changed the policy from %+v to %+v", i+1, k.RotationPolicy, m.RotationPolicy)
		}
	}
	var got *fsm.Key
	clustertest.WaitFor(t, 20*time.Second, "two scheduled rotations", func() bool {
		got, err = s.GetKey(ctx, org, k.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		// Each scheduled rotation adds one version and moves the
		// schedule by one period, never more.
		scheduled := int64(got.CurrentVersion) - 3
		if scheduled >= 0 && got.RotationPolicy.NextRotationAt != next+scheduled*int64(period) {
			t.Fatalf("after %d scheduled rotations next_rotation_at is %d, want %d",
				scheduled, got.RotationPolicy.NextRotationAt, next+scheduled*int64(period))
		}
		for _, v := range got.Versions[3:] {
			if v.CreatedAt < next {
				t.Fatalf("version %d made at %d, before the rotation was due at %d", v.Number, v.CreatedAt, next)
			}
		}
		return scheduled >= 2
	})

	// The disabled key was due long ago and was left alone.
	still, err := s.GetKey(ctx, org, off.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	// (Compared with the key as disabled: on a loaded machine its first
	// rotation may come due before the disable commits.)
	if still.CurrentVersion != off.CurrentVersion || still.RotationPolicy != off.RotationPolicy {
		t.Fatalf("disabled key rotated: version %d, policy %+v -> %+v", still.CurrentVersion, off.RotationPolicy, still.RotationPolicy)
	}
	enabledAt := time.Now().UnixNano()
	if _, err := s.EnableKey(ctx, keys.KeyRef{Organization: org, KeyID: off.ID}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 20*time.Second, "the re-enabled key's rotation", func() bool {
		got, err := s.GetKey(ctx, org, off.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		return got.CurrentVersion > off.CurrentVersion && got.RotationPolicy.NextRotationAt > enabledAt
	})

	// Turning the policy off stops the schedule.
	zero := time.Duration(0)
	stopped, err := s.UpdateKey(ctx, keys.UpdateParams{KeyRef: ref, RotationPeriod: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if stopped.RotationPolicy != (fsm.RotationPolicy{}) {
		t.Fatalf("policy after turning rotation off: %+v", stopped.RotationPolicy)
	}
}

// TestScheduler_Purge: a key is purged only once its deletion time has
// passed, and a cancelled deletion is never purged.
func TestScheduler_Purge(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	s := svc(c, 2)
	del := func(k *fsm.Key, w time.Duration) *fsm.Key {
		t.Helper()
		got, err := s.ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}, PendingWindow: w})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	cancelled := del(mustCreate(t, ctx, s, keys.CreateParams{Name: "cancelled"}), time.Second)
	if _, err := s.CancelDeletion(ctx, keys.KeyRef{Organization: org, KeyID: cancelled.ID}); err != nil {
		t.Fatal(err)
	}
	later := del(mustCreate(t, ctx, s, keys.CreateParams{Name: "later"}), 2*time.Second)
	if later.DeletionAt <= cancelled.DeletionAt {
		t.Fatal("clock went backwards")
	}
	leader := c.Leader().Server().FSM()
	clustertest.WaitFor(t, 20*time.Second, "the purge of the later key", func() bool {
		now := time.Now().UnixNano()
		purged := leader.IsTombstoned(later.ID)
		if purged && now < later.DeletionAt {
			t.Fatalf("purged %s early", time.Duration(later.DeletionAt-now))
		}
		return purged
	})
	tomb, _ := leader.Tombstone(later.ID)
	if tomb.PurgedAt < later.DeletionAt {
		t.Fatalf("purged at %d, before the deletion time %d", tomb.PurgedAt, later.DeletionAt)
	}
	// The scheduler has run past the cancelled key's old deletion time.
	got, err := s.GetKey(ctx, org, cancelled.ID, false)
	if err != nil {
		t.Fatalf("cancelled key: %v", err)
	}
	if got.State != fsm.KeyStateDisabled || got.DeletionAt != 0 {
		t.Fatalf("cancelled key is %s with deletion at %d", got.State, got.DeletionAt)
	}
}

// TestService_Idempotency: a repeated create or rotate with the same
// Idempotency-Key, from any node and concurrently, happens once.
func TestService_Idempotency(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	const o = "idem-org"
	var (
		mu  sync.Mutex
		ids = map[string]bool{}
		wg  sync.WaitGroup
	)
	for w := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := svc(c, w%3).CreateKey(ctx, keys.CreateParams{Organization: o, Name: "once", IdempotencyKey: "create-1"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[k.ID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Fatalf("concurrent creates with one token made %d keys", len(ids))
	}
	list, err := svc(c, 0).ListKeys(ctx, keys.ListParams{Organization: o})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Keys) != 1 {
		t.Fatalf("got %d keys, want 1", len(list.Keys))
	}
	id := list.Keys[0].ID
	// The same token in another organization, or another token, is
	// another create.
	other := mustCreate(t, ctx, svc(c, 1), keys.CreateParams{Organization: "idem-other", Name: "once", IdempotencyKey: "create-1"})
	second := mustCreate(t, ctx, svc(c, 1), keys.CreateParams{Organization: o, Name: "once", IdempotencyKey: "create-2"})
	if other.ID == id || second.ID == id {
		t.Fatal("a create with another scope or token returned the first key")
	}

	// Rotations: the same token rotates once, even concurrently and
	// with the (by then stale) revision of the first attempt.
	ref := keys.KeyRef{Organization: o, KeyID: id, IfRevision: list.Keys[0].Revision}
	versions := make(chan uint32, 6)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := svc(c, w%3).RotateKey(ctx, keys.RotateParams{KeyRef: ref, IdempotencyKey: "rotate-1"})
			for errors.Is(err, cluster.ErrLeadershipLost) || errors.Is(err, cluster.ErrNoLeader) {
				// The outcome is unknown: retry with the same token, as
				// the error says.
				k, err = svc(c, w%3).RotateKey(ctx, keys.RotateParams{KeyRef: ref, IdempotencyKey: "rotate-1"})
			}
			if err != nil {
				// The token is checked before If-Match: every attempt
				// after the first answers with its result.
				t.Error(err)
				return
			}
			versions <- k.CurrentVersion
		}()
	}
	wg.Wait()
	close(versions)
	for v := range versions {
		if v != 2 {
			t.Errorf("a rotation with token rotate-1 returned version %d, want 2", v)
		}
	}
	k, err := svc(c, 2).RotateKey(ctx, keys.RotateParams{KeyRef: ref, IdempotencyKey: "rotate-1"})
	if err != nil || k.CurrentVersion != 2 {
		t.Fatalf("retry with the stale revision: version %d, %v; want 2", k.CurrentVersion, err)
	}
	k, err = svc(c, 2).RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: o, KeyID: id}, IdempotencyKey: "rotate-2"})
	if err != nil || k.CurrentVersion != 3 {
		t.Fatalf("rotation with a new token: version %d, %v; want 3", k.CurrentVersion, err)
	}
	// The same token on another key is another rotation.
	k, err = svc(c, 0).RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: o, KeyID: second.ID}, IdempotencyKey: "rotate-1"})
	if err != nil || k.CurrentVersion != 2 {
		t.Fatalf("token reused on another key: version %d, %v; want 2", k.CurrentVersion, err)
	}
	// A retry answers with the key as it is now, without rotating it.
	if _, err := svc(c, 0).DisableKey(ctx, keys.KeyRef{Organization: o, KeyID: id}); err != nil {
		t.Fatal(err)
	}
	k, err = svc(c, 1).RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: o, KeyID: id}, IdempotencyKey: "rotate-2"})
	if err != nil || k.CurrentVersion != 3 || k.State != fsm.KeyStateDisabled {
		t.Fatalf("retry after disable: %+v, %v", k, err)
	}
}
