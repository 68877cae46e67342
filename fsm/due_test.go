package fsm

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// dueOrder lists what a state's scheduler index holds, in its order.
func dueOrder(s *state) (out []dueItem) {
	s.due.tree.Ascend(func(it dueItem) bool { out = append(out, it); return true })
	return out
}

// scanDue is what DueRotations and DuePurges answer by definition: every
// live key, checked one by one.
func scanDue(f *FSM, kind dueKind, now int64) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var ids []string
	for _, k := range f.st.keys {
		if it, ok := dueItemOf(k, f.zone); ok && it.kind == kind && it.at <= now {
			ids = append(ids, k.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func keyIDs(keys []*Key) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

// TestDueIndex_MatchesAScan drives keys through random lifecycle changes
// (rotation policies set, changed and cleared, rotations, disable and
// enable, deletion scheduled, cancelled and purged) and checks after each
// step, at several times, that DueRotations and DuePurges name exactly the
// keys a scan of every key finds, also after a snapshot and restore.
func TestDueIndex_MatchesAScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	f := newFSM(t)
	const org = "org-a"
	period := int64(24 * time.Hour)
	var ids []string
	versions := map[string]uint32{}
	now := t0
	sawRotations, sawPurges := 0, 0
	check := func(step string) {
		t.Helper()
		for _, at := range []int64{t0, now, now + period/2, now + 3*period, now + 40*period} {
			if got, want := keyIDs(f.DueRotations(at)), scanDue(f, dueRotation, at); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Fatalf("%s: DueRotations(%d) = %v, a scan finds %v", step, at, got, want)
			} else if len(got) > 0 {
				sawRotations++
			}
			if got, want := keyIDs(f.DuePurges(at)), scanDue(f, duePurge, at); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Fatalf("%s: DuePurges(%d) = %v, a scan finds %v", step, at, got, want)
			} else if len(got) > 0 {
				sawPurges++
			}
		}
		if len(f.st.due.byID) != f.st.due.tree.Len() {
			t.Fatalf("%s: index holds %d ids and %d entries", step, len(f.st.due.byID), f.st.due.tree.Len())
		}
	}
	for i := range 400 {
		now += int64(rng.IntN(int(period / 4)))
		var id string
		if len(ids) > 0 {
			id = ids[rng.IntN(len(ids))]
		}
		op := rng.IntN(8)
		if id == "" {
			op = 0
		}
		var res Result
		switch op {
		case 0:
			id = fmt.Sprintf("k%03d", i)
			p := createKey(id, org)
			p.Now, p.FirstVersion.CreatedAt = now, now
			if rng.IntN(2) == 0 {
				every := period * int64(1+rng.IntN(3))
				p.RotationPolicy = RotationPolicy{Period: every, NextRotationAt: now + every}
			}
			res = apply(t, f, CmdCreateKey, p)
			if res.Err == nil {
				ids = append(ids, id)
				versions[id] = 1
			}
		case 1:
			versions[id]++
			r := rotate(id, org, versions[id], now)
			if rng.IntN(2) == 0 { // as the scheduler does
				r.Scheduled, r.NextRotationAt = true, now+period
			}
			res = apply(t, f, CmdRotateKey, r)
			if res.Err != nil {
				versions[id]--
			}
		case 2:
			res = apply(t, f, CmdDisableKey, ref(id, org, now))
		case 3:
			res = apply(t, f, CmdEnableKey, ref(id, org, now))
		case 4:
			res = apply(t, f, CmdScheduleDeletion, scheduleDeletion(id, org, now, now+int64(rng.IntN(3))*period))
		case 5:
			res = apply(t, f, CmdCancelDeletion, ref(id, org, now))
		case 6:
			res = apply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: id, Now: now})
			if res.Err == nil {
				ids = slices.DeleteFunc(ids, func(s string) bool { return s == id })
			}
		case 7:
			pol := RotationPolicy{Period: period * int64(rng.IntN(3))}
			if pol.Period > 0 {
				pol.NextRotationAt = now + pol.Period
			}
			res = apply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref(id, org, now), RotationPolicy: &pol})
		}
		check(fmt.Sprintf("step %d (op %d on %s, err %v)", i, op, id, res.Err))
	}
	if sawRotations < 50 || sawPurges < 50 {
		t.Fatalf("keys due for rotation in %d checks, for purge in %d: the test exercises too little", sawRotations, sawPurges)
	}
	g := roundTrip(t, f)
	if got, want := dueOrder(g.st), dueOrder(f.st); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a snapshot and restore, the scheduler's order %v, want %v", got, want)
	}
	if strings.Join(keyIDs(g.DueRotations(now+40*period)), ",") != strings.Join(keyIDs(f.DueRotations(now+40*period)), ",") {
		t.Fatal("restored FSM answers DueRotations differently")
	}
}
