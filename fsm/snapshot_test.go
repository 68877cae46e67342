package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// mixedKeys is the number of key ids mixedLog uses: k0, k1, ...
const mixedKeys = 30

// mixedLog returns a seeded pseudo-random log of every command type over a
// few keys and organizations, many of which Apply refuses.
func mixedLog(seed uint64, n int) []step {
	r := rand.New(rand.NewPCG(seed, 0))
	orgs := []string{orgA, orgB}
	versions := map[string]uint32{}
	var log []step
	for i := 0; i < n; i++ {
		// Each key belongs to one organization; one command in ten names
		// the other one.
		k := r.IntN(mixedKeys)
		id, org := fmt.Sprintf("k%d", k), orgs[k%2]
		if r.IntN(10) == 0 {
			org = orgs[(k+1)%2]
		}
		now := t0 + int64(i)*hour
		token := fmt.Sprintf("tok-%d", r.IntN(4))
		op := r.IntN(13)
		if op == 10 && r.IntN(4) != 0 {
			op = 12 // purge rarely: purged ids are gone for good
		}
		switch op {
		case 0:
			p := withPolicy(createKey(id, org), 10*hour, now+10*hour)
			if r.IntN(3) == 0 {
				p = createExternal(id, org)
			}
			p.Now = now
			p.Idempotency = Idempotency{Token: token, ExpiresAt: now + 20*hour}
			log = append(log, step{CmdCreateKey, p})
		case 1:
			name := fmt.Sprintf("name-%d", r.IntN(3))
			tags := []string{fmt.Sprintf("tag-%d", r.IntN(3))}
			log = append(log, step{CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref(id, org, now), Name: &name, Tags: &tags}})
		case 2:
			log = append(log, step{CmdEnableKey, ref(id, org, now)})
		case 3:
			log = append(log, step{CmdDisableKey, ref(id, org, now)})
		case 4:
			log = append(log, step{CmdProtectKey, ref(id, org, now)})
		case 5:
			log = append(log, step{CmdUnprotectKey, ref(id, org, now)})
		case 6, 7:
			// The proposer's guess of the next version is often right.
			versions[id]++
			n := versions[id] + 1
			if r.IntN(4) == 0 {
				n = uint32(r.IntN(4))
			}
			p := rotate(id, org, n, now)
			p.Idempotency = Idempotency{Token: token, ExpiresAt: now + 5*hour}
			if r.IntN(3) == 0 {
				p.Scheduled, p.NextRotationAt = true, now+10*hour
			}
			log = append(log, step{CmdRotateKey, p})
		case 8:
			log = append(log, step{CmdScheduleDeletion, scheduleDeletion(id, org, now, now+int64(r.IntN(30))*hour)})
		case 9:
			log = append(log, step{CmdCancelDeletion, ref(id, org, now)})
		case 10:
			log = append(log, step{CmdPurgeKey, PurgeKeyV1{KeyID: id, Now: now}})
		case 11:
			log = append(log, step{CmdExpireIdempotency, ExpireIdempotencyV1{Now: now}})
		case 12:
			log = append(log, step{CmdEnableKey, ref(id, org, now)})
		}
	}
	return log
}

func TestFSM_Determinism_MixedLog(t *testing.T) {
	const seed = 42
	t.Logf("seed %d", seed)
	log := mixedLog(seed, 2000)

	a, b, c := newFSM(t), newFSM(t), newFSM(t)
	ra := applySteps(t, a, log)
	rb := applySteps(t, b, log)
	// c restores a snapshot taken halfway (as a lagging follower would)
	// and applies the rest.
	half := newFSM(t)
	applySteps(t, half, log[:len(log)/2])
	if err := restoreBytes(c, snapshotBytes(t, half)); err != nil {
		t.Fatal(err)
	}
	applySteps(t, c, log[len(log)/2:])

	sa, sb, sc := snapshotBytes(t, a), snapshotBytes(t, b), snapshotBytes(t, c)
	if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
		t.Fatal("FSMs that applied the same log have different snapshots")
	}
	var ids []string
	for i := 0; i < mixedKeys; i++ {
		ids = append(ids, fmt.Sprintf("k%d", i))
	}
	if qa, qc := queryAnswers(t, a, testOrgs, ids, nil), queryAnswers(t, c, testOrgs, ids, nil); qa != qc {
		t.Errorf("answers differ:\n%s\n%s", qa, qc)
	}
	// The log exercises successes and refusals of every kind.
	var ok, refused int
	codes := map[string]int{}
	for i := range ra {
		ja, _ := json.Marshal(ra[i])
		jb, _ := json.Marshal(rb[i])
		if !bytes.Equal(ja, jb) {
			t.Fatalf("result %d differs: %s vs %s", i, ja, jb)
		}
		if ra[i].Err != nil {
			refused++
			var w resultWire
			_ = json.Unmarshal(ja, &w)
			codes[w.ErrCode]++
		} else {
			ok++
		}
	}
	t.Logf("%d applied, %d refused %v, %d live keys, snapshot %d bytes", ok, refused, codes, a.KeyCount(), len(sa))
	if ok < 500 || len(codes) < 5 || a.KeyCount() < 5 {
		t.Errorf("log too one-sided: %d applied, %d refused", ok, refused)
	}
}

func TestFSM_Snapshot_Format(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withToken(createKey("k2", orgA), "tok", t0+day))
	mustApply(t, f, CmdCreateKey, createKey("k1", orgB))
	mustApply(t, f, CmdCreateKey, createKey("k3", orgA))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("k3", orgA, t0, t0+day))
	mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "k3", Now: t0 + day})
	f.Apply(&raft.Log{Index: f.AppliedIndex() + 1, Term: 7, Type: raft.LogCommand, Data: mustEncode(t, CmdExpireIdempotency, ExpireIdempotencyV1{Now: 0})})

	lines := strings.Split(strings.TrimSuffix(string(snapshotBytes(t, f)), "\n"), "\n")
	if got, want := lines[0], `{"format":1,"index":6,"term":7}`; got != want {
		t.Errorf("header = %s, want %s", got, want)
	}
	var types []string
	for _, l := range lines[1:] {
		var rec struct {
			Type string `json:"type"`
			Key  struct{ ID string }
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		types = append(types, rec.Type+":"+rec.Key.ID)
	}
	if got, want := strings.Join(types, " "), "key:k1 key:k2 tombstone: idempotency: end:"; got != want {
		t.Errorf("records = %s, want %s", got, want)
	}
	if got, want := lines[len(lines)-1], `{"type":"end","counts":{"keys":2,"tombstones":1,"idempotency":1}}`; got != want {
		t.Errorf("end = %s, want %s", got, want)
	}
	if strings.Contains(lines[1], `null`) {
		t.Errorf("key record has null lists: %s", lines[1])
	}
}

func mustEncode(t testing.TB, typ CommandType, payload any) []byte {
	t.Helper()
	return makeLog(t, 0, typ, payload).Data
}

func TestFSM_Restore_ReplacesEverything(t *testing.T) {
	// f has its own keys, tombstone and idempotency record...
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, withToken(createKey("old1", orgA), "tok-old", t0+day))
	mustApply(t, f, CmdCreateKey, createKey("old2", orgB))
	mustApply(t, f, CmdScheduleDeletion, scheduleDeletion("old2", orgB, t0, t0+hour))
	mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: "old2", Now: t0 + hour})
	mustApply(t, f, CmdCreateKey, createKey("shared", orgA))
	for i := 0; i < 20; i++ {
		mustApply(t, f, CmdCreateKey, createKey(fmt.Sprintf("old-%02d", i), orgA))
	}

	// ...g has others, at a lower index.
	g := newFSM(t)
	mustApply(t, g, CmdCreateKey, createKey("new1", orgA))
	mustApply(t, g, CmdCreateKey, withPolicy(createKey("shared", orgB), day, t0+day))

	if err := restoreBytes(f, snapshotBytes(t, g)); err != nil {
		t.Fatal(err)
	}
	ids := []string{"old1", "old2", "old-00", "shared", "new1"}
	scopes := []string{IdempotencyScope(orgA, "create", "tok-old")}
	if got, want := queryAnswers(t, f, testOrgs, ids, scopes), queryAnswers(t, g, testOrgs, ids, scopes); got != want {
		t.Errorf("restored FSM answers\n%s\nwant\n%s", got, want)
	}
	if f.AppliedIndex() != 2 || f.KeyCount() != 2 || f.IsTombstoned("old2") {
		t.Errorf("applied %d, %d keys, tombstone kept %v", f.AppliedIndex(), f.KeyCount(), f.IsTombstoned("old2"))
	}
	if keys, _ := f.ListKeys(ListQuery{Organization: orgA}); len(keys) != 1 || keys[0].ID != "new1" {
		t.Errorf("ListKeys(orgA) = %v, want only new1", keys)
	}
	// The old id is free again; the purged one too, since its tombstone
	// was not in the snapshot.
	mustApply(t, f, CmdCreateKey, createKey("old2", orgA))
}

func TestFSM_Restore_RejectsGarbage(t *testing.T) {
	src := newFSM(t)
	mustApply(t, src, CmdCreateKey, withToken(createKey("k1", orgA), "tok", t0+day))
	mustApply(t, src, CmdCreateKey, createKey("k2", orgA))
	mustApply(t, src, CmdScheduleDeletion, scheduleDeletion("k2", orgA, t0, t0+hour))
	mustApply(t, src, CmdPurgeKey, PurgeKeyV1{KeyID: "k2", Now: t0 + hour})
	good := string(snapshotBytes(t, src))
	lines := strings.SplitAfter(good, "\n")
	// lines: header, key k1, tombstone k2, idempotency, end, "".
	keyLine, endLine := lines[1], lines[4]

	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"not json", "hello\n"},
		{"format 0", `{"format":0,"index":1,"term":1}` + "\n" + endLine},
		{"format 2", strings.Replace(good, `"format":1`, `"format":2`, 1)},
		{"header unknown field", strings.Replace(good, `"term":1`, `"term":1,"x":1`, 1)},
		{"no header", strings.Join(lines[1:], "")},
		{"truncated", strings.Join(lines[:4], "")},
		{"truncated mid record", good[:len(lines[0])+len(keyLine)/2]},
		{"count mismatch", lines[0] + lines[1] + lines[3] + endLine},
		{"unknown record type", lines[0] + `{"type":"org"}` + "\n" + strings.Join(lines[1:], "")},
		{"unknown key field", strings.Replace(good, `"usage"`, `"flavour":"x","usage"`, 1)},
		{"unknown key state", strings.Replace(good, `"state":"enabled","protected"`, `"state":"weird","protected"`, 1)},
		{"duplicate key", lines[0] + keyLine + strings.Join(lines[1:], "")},
		{"key record without key", lines[0] + `{"type":"key"}` + "\n" + strings.Join(lines[1:], "")},
		{"key and tombstone share id", strings.Replace(good, `"tombstone":{"id":"k2"`, `"tombstone":{"id":"k1"`, 1)},
		{"data after end", good + keyLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			mustApply(t, f, CmdCreateKey, createKey("mine", orgB))
			before := snapshotBytes(t, f)
			if err := restoreBytes(f, []byte(tt.data)); err == nil {
				t.Fatal("Restore accepted a bad snapshot")
			} else {
				t.Log(err)
			}
			if !bytes.Equal(snapshotBytes(t, f), before) || f.AppliedIndex() != 1 {
				t.Error("failed Restore changed the state")
			}
		})
	}
	// The untouched stream is accepted.
	if err := restoreBytes(newFSM(t), []byte(good)); err != nil {
		t.Fatalf("good snapshot refused: %v", err)
	}
}

// failingSink fails every write after the first n bytes.
type failingSink struct {
	memSink
	n int
}

func (s *failingSink) Write(p []byte) (int, error) {
	if s.Len()+len(p) > s.n {
		return 0, errors.New("disk full")
	}
	return s.memSink.Write(p)
}

func TestFSM_Persist_CancelsOnError(t *testing.T) {
	f := newFSM(t)
	for i := 0; i < 2000; i++ {
		mustApply(t, f, CmdCreateKey, createKey(fmt.Sprintf("k%05d", i), orgA))
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &failingSink{n: 100}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist succeeded on a failing sink")
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("cancelled %v closed %v, want cancelled only", sink.cancelled, sink.closed)
	}
}

// A snapshot holds the state as of Snapshot(), while Apply goes on
// during Persist.
func TestFSM_Snapshot_PointInTime(t *testing.T) {
	f := newFSM(t)
	for i := 0; i < 100; i++ {
		mustApply(t, f, CmdCreateKey, createKey(fmt.Sprintf("k%03d", i), orgA))
	}
	want := snapshotBytes(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			id := fmt.Sprintf("k%03d", i)
			apply(t, f, CmdDisableKey, ref(id, orgA, t0+hour))
			apply(t, f, CmdCreateKey, createKey("new-"+id, orgA))
		}
	}()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	snap.Release()
	if !bytes.Equal(sink.Bytes(), want) {
		t.Error("snapshot changed by applies made after Snapshot()")
	}
	if f.KeyCount() != 200 {
		t.Errorf("KeyCount = %d, want 200", f.KeyCount())
	}
}
