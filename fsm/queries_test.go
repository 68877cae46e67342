package fsm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

func ids(keys []*Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

func TestFSM_ListKeys(t *testing.T) {
	f := newFSM(t)
	// orgA: k00..k09; even ones named "even" and tagged "red", k03 disabled,
	// k05 pending deletion. orgB: b1.
	for i := 0; i < 10; i++ {
		p := createKey(fmt.Sprintf("k%02d", i), orgA)
		p.Tags = []string{"blue"}
		if i%2 == 0 {
			p.Name, p.Tags = "even", []string{"blue", "red"}
		}
		mustApply(t, f, CmdCreateKey, p)
	}
	mustApply(t, f, CmdCreateKey, createKey("b1", orgB))
	mustApply(t, f, CmdDisableKey, ref("k03", orgA, t0))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k05", orgA, t0, t0+day))

	tests := []struct {
		name     string
		q        ListQuery
		want     []string
		wantMore bool
	}{
		{"all", ListQuery{Organization: orgA}, []string{"k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09"}, false},
		{"no organization", ListQuery{}, nil, false},
		{"unknown organization", ListQuery{Organization: "org-z"}, nil, false},
		{"other organization", ListQuery{Organization: orgB}, []string{"b1"}, false},
		{"name", ListQuery{Organization: orgA, Name: "even"}, []string{"k00", "k02", "k04", "k06", "k08"}, false},
		{"name prefix is not a match", ListQuery{Organization: orgA, Name: "eve"}, nil, false},
		{"tag", ListQuery{Organization: orgA, Tag: "red"}, []string{"k00", "k02", "k04", "k06", "k08"}, false},
		{"tag everywhere", ListQuery{Organization: orgA, Tag: "blue", Limit: 3}, []string{"k00", "k01", "k02"}, true},
		{"state disabled", ListQuery{Organization: orgA, State: KeyStateDisabled}, []string{"k03"}, false},
		{"state pending deletion", ListQuery{Organization: orgA, State: KeyStatePendingDeletion}, []string{"k05"}, false},
		{"state and tag", ListQuery{Organization: orgA, State: KeyStateEnabled, Tag: "red", Limit: 2}, []string{"k00", "k02"}, true},
		{"page 1", ListQuery{Organization: orgA, Limit: 4}, []string{"k00", "k01", "k02", "k03"}, true},
		{"page 2", ListQuery{Organization: orgA, Limit: 4, AfterID: "k03"}, []string{"k04", "k05", "k06", "k07"}, true},
		{"last page exactly full", ListQuery{Organization: orgA, Limit: 2, AfterID: "k07"}, []string{"k08", "k09"}, false},
		{"after a missing id", ListQuery{Organization: orgA, Limit: 2, AfterID: "k045"}, []string{"k05", "k06"}, true},
		{"after the end", ListQuery{Organization: orgA, AfterID: "k99"}, nil, false},
		{"before the start", ListQuery{Organization: orgA, AfterID: "a", Limit: 1}, []string{"k00"}, true},
		{"filtered page with more", ListQuery{Organization: orgA, Name: "even", Limit: 2, AfterID: "k02"}, []string{"k04", "k06"}, true},
		{"filtered last page", ListQuery{Organization: orgA, Name: "even", Limit: 2, AfterID: "k06"}, []string{"k08"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, more := f.ListKeys(tt.q)
			if got := ids(keys); !slices.Equal(got, tt.want) || more != tt.wantMore {
				t.Errorf("ListKeys = %v, more %v; want %v, more %v", got, more, tt.want, tt.wantMore)
			}
		})
	}
}

// Paging through many randomly created and purged keys returns every live
// key exactly once, in order.
func TestFSM_ListKeys_PagesAfterChurn(t *testing.T) {
	f := newFSM(t)
	r := rand.New(rand.NewPCG(7, 0))
	live := map[string]bool{}
	for i := 0; i < 3000; i++ {
		id := fmt.Sprintf("%08x", r.Uint32())
		if live[id] {
			continue
		}
		mustApply(t, f, CmdCreateKey, createKey(id, orgA))
		live[id] = true
		if r.IntN(3) == 0 {
			mustApply(t, f, CmdScheduleDeletion, scheduleDeletion(id, orgA, t0, t0+hour))
			mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: id, Now: t0 + hour})
			delete(live, id)
		}
	}
	var want []string
	for id := range live {
		want = append(want, id)
	}
	sort.Strings(want)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		keys, more := f.ListKeys(ListQuery{Organization: orgA, AfterID: after, Limit: 97})
		got = append(got, ids(keys)...)
		if !more {
			break
		}
		after = keys[len(keys)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged %d ids, want %d (equal: %v)", len(got), len(want), slices.Equal(got, want))
	}
	if f.KeyCount() != len(want) {
		t.Errorf("KeyCount = %d, want %d", f.KeyCount(), len(want))
	}
}

func TestFSM_DueRotations(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k3", orgA), day, t0+day))
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k1", orgB), day, t0+2*day))
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k2", orgA), day, t0+day))
	mustApply(t, f, CmdCreateKey, createKey("k4", orgA)) // no policy
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k5", orgA), day, t0+day))
	mustApply(t, f, CmdDisableKey, ref("k5", orgA, t0)) // disabled: skipped
	mustApply(t, f, CmdCreateKey, withPolicy(createKey("k6", orgA), day, t0+day))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k6", orgA, t0, t0+10*day))

	for _, tt := range []struct {
		now  int64
		want []string
	}{
		{t0, nil},
		{t0 + day - 1, nil},
		{t0 + day, []string{"k2", "k3"}},
		{t0 + 5*day, []string{"k1", "k2", "k3"}},
	} {
		if got := ids(f.DueRotations(tt.now)); !slices.Equal(got, tt.want) {
			t.Errorf("DueRotations(t0+%v) = %v, want %v", time.Duration(tt.now-t0), got, tt.want)
		}
	}

	// The ticker's scheduled rotation moves the key off the due list;
	// a manual one does not.
	p := rotate("k2", orgA, 2, t0+day)
	p.Scheduled, p.NextRotationAt = true, t0+2*day
	mustApply(t, f, CmdRotateKey, p)
	mustApply(t, f, CmdRotateKey, rotate("k3", orgA, 2, t0+day))
	if got, want := ids(f.DueRotations(t0+day)), []string{"k3"}; !slices.Equal(got, want) {
		t.Errorf("DueRotations after rotations = %v, want %v", got, want)
	}
	// The same tick proposed twice: the second is refused, not a double rotation.
	p.NewVersion = version("k2", 3, t0+day)
	if res := apply(t, f, CmdRotateKey, p); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Errorf("second scheduled rotation: Err = %v, want ErrInvalidCommand", res.Err)
	}
}

func TestFSM_DuePurges(t *testing.T) {
	f := newFSM(t)
	for _, id := range []string{"k3", "k1", "k2", "k4"} {
		mustApply(t, f, CmdCreateKey, createKey(id, orgA))
	}
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k3", orgA, t0, t0+day))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k1", orgA, t0, t0+day))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k2", orgA, t0, t0+3*day))
	for _, tt := range []struct {
		now  int64
		want []string
	}{
		{t0, nil},
		{t0 + day, []string{"k1", "k3"}},
		{t0 + 3*day, []string{"k1", "k2", "k3"}},
	} {
		if got := ids(f.DuePurges(tt.now)); !slices.Equal(got, tt.want) {
			t.Errorf("DuePurges(t0+%v) = %v, want %v", time.Duration(tt.now-t0), got, tt.want)
		}
	}
	mustApply(t, f, CmdCancelDeletion, ref("k3", orgA, t0))
	mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0 + day})
	if got := ids(f.DuePurges(t0 + 3*day)); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("DuePurges = %v, want [k2]", got)
	}
}

func TestFSM_WaitApplied(t *testing.T) {
	f := newFSM(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Already applied: returns at once.
	if err := f.WaitApplied(ctx, 0); err != nil {
		t.Fatal(err)
	}

	// Waiters for indexes 1 and 3 wake as those are applied.
	results := make(chan uint64, 2)
	for _, idx := range []uint64{3, 1} {
		go func() {
			if err := f.WaitApplied(ctx, idx); err != nil {
				t.Errorf("WaitApplied(%d): %v", idx, err)
			}
			results <- idx
		}()
	}
	mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
	if got := <-results; got != 1 {
		t.Fatalf("woke waiter %d first, want 1", got)
	}
	select {
	case got := <-results:
		t.Fatalf("waiter %d woke at index 1", got)
	default:
	}
	mustApply(t, f, CmdDisableKey, ref("k1", orgA, t0))
	apply(t, f, CmdEnableKey, ref("nope", orgA, t0)) // refused, still applied
	if got := <-results; got != 3 {
		t.Fatalf("woke waiter %d, want 3", got)
	}
	// State read after WaitApplied reflects the index.
	if k, _ := f.Key("k1"); k.State != KeyStateDisabled {
		t.Errorf("State = %s, want disabled", k.State)
	}

	// A restore wakes waiters too.
	g := newFSM(t)
	for i := 0; i < 10; i++ {
		mustApply(t, g, CmdCreateKey, createKey(fmt.Sprintf("g%d", i), orgA))
	}
	woke := make(chan error, 1)
	go func() { woke <- f.WaitApplied(ctx, 8) }()
	if err := restoreBytes(f, snapshotBytes(t, g)); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("WaitApplied after restore: %v", err)
	}
	if f.AppliedIndex() != 10 {
		t.Errorf("AppliedIndex = %d, want 10", f.AppliedIndex())
	}
}

func TestFSM_WaitApplied_ContextDone(t *testing.T) {
	f := newFSM(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.WaitApplied(ctx, 5) }()
	mustApply(t, f, CmdCreateKey, createKey("k1", orgA)) // index 1: not enough
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("WaitApplied = %v, want context.Canceled", err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer dcancel()
	if err := f.WaitApplied(dctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitApplied = %v, want context.DeadlineExceeded", err)
	}
}

// The chunked id index agrees with a plain sorted set under random churn.
func TestIDIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := &idIndex{}
	ref := map[string]bool{}
	for i := 0; i < 20000; i++ {
		id := fmt.Sprintf("%05d", r.IntN(6000))
		if r.IntN(3) == 0 {
			if got := x.remove(id); got != ref[id] {
				t.Fatalf("remove(%s) = %v, want %v", id, got, ref[id])
			}
			delete(ref, id)
		} else {
			if got := x.insert(id); got == ref[id] {
				t.Fatalf("insert(%s) = %v with present=%v", id, got, ref[id])
			}
			ref[id] = true
		}
	}
	want := make([]string, 0, len(ref))
	for id := range ref {
		want = append(want, id)
	}
	sort.Strings(want)
	for _, c := range x.chunks {
		if len(c) == 0 || len(c) > maxChunk {
			t.Fatalf("chunk of %d ids", len(c))
		}
	}
	collect := func(x *idIndex, after string) []string {
		var got []string
		x.ascendAfter(after, func(id string) bool { got = append(got, id); return true })
		return got
	}
	if got := collect(x, ""); !slices.Equal(got, want) || x.len() != len(want) {
		t.Fatalf("index holds %d ids (len %d), want %d", len(got), x.len(), len(want))
	}
	for _, after := range []string{"", "00000", "02999", "03000x", want[len(want)/2], "99999"} {
		i := sort.Search(len(want), func(i int) bool { return want[i] > after })
		if got := collect(x, after); !slices.Equal(got, want[i:]) {
			t.Errorf("ascendAfter(%q): %d ids, want %d", after, len(got), len(want)-i)
		}
	}
	// Early stop.
	n := 0
	x.ascendAfter("", func(string) bool { n++; return n < 5 })
	if n != 5 {
		t.Errorf("ascendAfter visited %d after stop, want 5", n)
	}
	// Bulk build gives the same order.
	if got := collect(buildIndex(want), ""); !slices.Equal(got, want) {
		t.Error("buildIndex order differs")
	}
}
