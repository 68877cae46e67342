package fsm

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
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

	b := snapshotBytes(t, f)
	if !bytes.HasPrefix(b, []byte("KZSNAP\x00\x02")) {
		t.Fatalf("snapshot starts with %q, want the magic prefix and format 2", b[:min(len(b), 8)])
	}
	frames := splitFrames(t, b)
	if got, want := string(payloadOf(frames[0])), `{"format":2,"index":6,"term":7}`; frames[0][0] != frameHeader || got != want {
		t.Errorf("header = %d %s, want %d %s", frames[0][0], got, frameHeader, want)
	}
	var types []byte
	for _, fr := range frames[1:] {
		types = append(types, fr[0])
	}
	if want := []byte{frameKey, frameKey, frameTombstone, frameIdempotency, frameEnd}; !bytes.Equal(types, want) {
		t.Errorf("frame types = %v, want %v", types, want)
	}
	if !bytes.HasPrefix(payloadOf(frames[1]), append([]byte{2}, "k1"...)) || !bytes.HasPrefix(payloadOf(frames[2]), append([]byte{2}, "k2"...)) {
		t.Error("keys not sorted by id")
	}
	last := frames[len(frames)-1]
	if got, want := string(payloadOf(last)), `{"keys":2,"tombstones":1,"idempotency":1}`; got != want {
		t.Errorf("end = %s, want %s", got, want)
	}
	// About a third of format 1 for a key with one version.
	if kb, jb := len(frames[1]), len(jsonSnapshotBytes(t, f)); kb > 200 || len(b) > jb/2 {
		t.Errorf("key frame of %d bytes, snapshot of %d bytes (format 1: %d)", kb, len(b), jb)
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

// Format 1 (see snapshot_binary_test.go for format 2).
func TestFSM_Restore_RejectsGarbage(t *testing.T) {
	src := newFSM(t)
	mustApply(t, src, CmdCreateKey, withToken(createKey("k1", orgA), "tok", t0+day))
	mustApply(t, src, CmdCreateKey, createKey("k2", orgA))
	mustApply(t, src, CmdScheduleDeletion, scheduleDeletion("k2", orgA, t0, t0+hour))
	mustApply(t, src, CmdPurgeKey, PurgeKeyV1{KeyID: "k2", Now: t0 + hour})
	good := string(jsonSnapshotBytes(t, src))
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

// writeJSON writes the snapshot in format 1, as Persist did before format
// 2: the compatibility tests restore what it writes.
func (s *fsmSnapshot) writeJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, snapshotBufferSize)
	enc := json.NewEncoder(bw)
	h := s.header
	h.Format = snapshotFormatJSON
	if err := enc.Encode(h); err != nil {
		return err
	}
	var err error
	emit := func(r snapshotRecord) {
		if err == nil {
			err = enc.Encode(r)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.keys)) {
		emit(snapshotRecord{Type: recordKey, Key: s.keys[id]})
	}
	for _, id := range slices.Sorted(maps.Keys(s.tombstones)) {
		t := s.tombstones[id]
		emit(snapshotRecord{Type: recordTombstone, Tombstone: &t})
	}
	for _, scope := range slices.Sorted(maps.Keys(s.idem)) {
		r := s.idem[scope]
		emit(snapshotRecord{Type: recordIdempotency, Idempotency: &r})
	}
	for _, e := range slices.SortedFunc(maps.Values(s.changes), func(a, b ChangeEntry) int { return cmp.Compare(a.Seq, b.Seq) }) {
		emit(snapshotRecord{Type: recordChange, Change: &e})
	}
	for _, z := range slices.Sorted(maps.Keys(s.repl)) {
		r := s.repl[z]
		emit(snapshotRecord{Type: recordReplication, Replication: &r})
	}
	for _, id := range slices.Sorted(maps.Keys(s.removed)) {
		r := s.removed[id]
		emit(snapshotRecord{Type: recordRemovedNode, RemovedNode: &r})
	}
	for _, id := range slices.Sorted(maps.Keys(s.imports)) {
		p := s.imports[id]
		emit(snapshotRecord{Type: recordImport, Import: &p})
	}
	for _, id := range slices.Sorted(maps.Keys(s.orgs)) {
		emit(snapshotRecord{Type: recordOrganization, Organization: s.orgs[id]})
	}
	for _, id := range slices.Sorted(maps.Keys(s.tokens)) {
		emit(snapshotRecord{Type: recordToken, Token: s.tokens[id]})
	}
	end := s.counts()
	emit(snapshotRecord{Type: recordEnd, Counts: &end})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// jsonSnapshotBytes is f's state in format 1.
func jsonSnapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withoutHeader returns a snapshot stream of either format without its
// header: the state, whatever the applied index.
func withoutHeader(t testing.TB, b []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		return b[bytes.IndexByte(b, '\n')+1:]
	}
	frames := splitFrames(t, b)
	return b[len(b)-len(bytes.Join(frames[1:], nil)):]
}

// splitFrames cuts a format-2 stream into its frames (type, length and
// payload each).
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	rest := b[len(snapshotMagic)+1:]
	var frames [][]byte
	for len(rest) > 0 {
		n, w := binary.Uvarint(rest[1:])
		if w <= 0 || uint64(len(rest)) < 1+uint64(w)+n {
			t.Fatalf("malformed frame at byte %d", len(b)-len(rest))
		}
		size := 1 + w + int(n)
		frames = append(frames, rest[:size:size])
		rest = rest[size:]
	}
	return frames
}

// richSnapshot holds every kind of record and of change entry, a key with
// every field set, one with every field zero, one with empty (not nil)
// lists and one with extreme values. It is built directly, not through
// Apply, to reach fields no single command sets.
func richSnapshot() *fsmSnapshot {
	full := &Key{
		ID: "k-full", Organization: orgA, Name: "full — ünïcode \"quoted\" <html>", Description: "every field set",
		Tags: []string{"team-a", "pci"}, Usage: UsageSymmetricEncryption, Algorithm: AlgorithmAES256GCM,
		Origin: OriginExternal, State: KeyStateEnabled, Protected: true,
		RotationPolicy: RotationPolicy{Period: 90 * day, NextRotationAt: t0 + 90*day},
		Versions: []Version{
			{Number: 1, RekID: "rek-0", CreatedAt: t0, State: VersionStateDestroyed},
			{Number: 2, Wrapped: wrapped("k-full", 2), RekID: "rek-1", CreatedAt: t0 + hour, State: VersionStateEnabled},
			{Number: 3, Wrapped: wrapped("k-full", 3), RekID: "rek-1", CreatedAt: t0 + 2*hour, State: VersionStateEnabled},
		},
		CurrentVersion: 2, PrimaryZone: "zone-1", ReplicaZones: []string{"zone-2", "zone-3"},
		CreatedAt: t0, UpdatedAt: t0 + 2*hour, DeletionAt: t0 + 30*day, Revision: 41,
		PendingVersion: 3, PendingZones: []string{"zone-3"}, PendingSeq: 7, ReplicaSeq: 5, PrimaryEpoch: 2, Default: true,
	}
	zero := &Key{ID: "k-zero", Organization: orgB, State: KeyStateDisabled}
	empty := &Key{ID: "k-empty", Organization: orgA, State: KeyStatePendingImport,
		Tags: []string{}, Versions: []Version{}, ReplicaZones: []string{}}
	edge := &Key{ID: "k-edge", Organization: orgB, State: KeyStatePendingDeletion, Name: strings.Repeat("n", 300),
		RotationPolicy: RotationPolicy{Period: -1, NextRotationAt: math.MinInt64},
		Versions:       []Version{{Number: math.MaxUint32, Wrapped: bytes.Repeat([]byte{0xff}, 200), CreatedAt: math.MaxInt64}},
		CurrentVersion: math.MaxUint32, CreatedAt: math.MinInt64, Revision: math.MaxUint64,
		PendingSeq: math.MaxUint64, ReplicaSeq: 1 << 63, PrimaryEpoch: math.MaxUint64}
	replica := &Key{ID: "k-replica", Organization: orgA, State: KeyStateEnabled, PrimaryZone: "zone-2",
		ReplicaZones: []string{"zone-1"}, Versions: []Version{version("k-replica", 1, t0)}, CurrentVersion: 1,
		Revision: 30, ReplicaSeq: 9, PrimaryEpoch: 1, Tags: []string{"team-a"}}
	moved := &Key{ID: "k-moved", Organization: orgA, State: KeyStateEnabled, PrimaryZone: "zone-3", Revision: 35}
	movedBefore := &Key{ID: "k-moved", Organization: orgA, State: KeyStateEnabled, PrimaryZone: "zone-1",
		ReplicaZones: []string{"zone-3"}, Revision: 33}
	gone := &Key{ID: "k-gone", Organization: orgB, State: KeyStateEnabled, PrimaryZone: "zone-1", Revision: 20}

	org := &Organization{ID: "org-t", Name: "Tenant T", DefaultKeyID: "k-full", HomeZone: "zone-1",
		KeyQuota: 10, RateLimit: 12.5, RateBurst: 20, CreatedAt: t0, UpdatedAt: t0 + hour, Generation: 3}
	token := &Token{ID: "tk1", Organization: "org-t", Role: RoleCryptoUser, SecretHash: bytes.Repeat([]byte{7}, 32),
		KeyIDs: []string{"k-full"}, Tags: []string{"pci"}, Description: "ci", HomeZone: "zone-1",
		CreatedAt: t0, ExpiresAt: t0 + day, RevokedAt: t0 + hour, Generation: 2}
	minimal := &Token{ID: "tk2", Organization: "org-t", Role: RoleAuditor, SecretHash: bytes.Repeat([]byte{8}, 32),
		HomeZone: "zone-1", CreatedAt: t0, Generation: 1}
	purged := Tombstone{ID: "t-full", Organization: orgA, PurgedAt: t0 + day, PrimaryZone: "zone-1", PrimaryEpoch: 3}

	keys := map[string]*Key{}
	for _, k := range []*Key{full, zero, empty, edge, replica, moved} {
		keys[k.ID] = k
	}
	scope := IdempotencyScope(orgA, "create", "tok")
	return &fsmSnapshot{
		keys:       keys,
		tombstones: map[string]Tombstone{purged.ID: purged, "t-min": {ID: "t-min", Organization: orgB}},
		idem: map[string]IdempotencyRecord{
			scope: {Scope: scope, KeyID: "k-full", Version: 1, ExpiresAt: t0 + day},
			"s2":  {Scope: "s2", KeyID: "k-zero", ExpiresAt: t0},
		},
		changes: map[string]ChangeEntry{
			"k-gone":         {Seq: 1, KeyID: "k-gone", Key: gone},
			"k-moved":        {Seq: 2, KeyID: "k-moved", Key: movedBefore},
			"t-full":         {Seq: 3, KeyID: "t-full", Tombstone: &purged},
			orgSlot(org.ID):  {Seq: 4, KeyID: orgSlot(org.ID), Organization: org},
			tokenSlot("tk1"): {Seq: 6, KeyID: tokenSlot("tk1"), Token: token},
			"k-full":         {Seq: 7, KeyID: "k-full", Key: full},
		},
		repl: map[string]ZoneProgress{
			"zone-2": {Zone: "zone-2", Applied: 12, Acked: 7, Refused: []string{"k-x"}, Disputed: []string{"k-y", "k-z"}},
			"zone-3": {Zone: "zone-3", Applied: 1},
		},
		removed: map[string]RemovedNode{"n3": {NodeID: "n3", Zone: "zone-1", RemovedAt: t0}},
		imports: map[string]ImportParams{
			"k-full": {KeyID: "k-full", TokenID: "it-1", TokenHash: bytes.Repeat([]byte{1}, 32), PublicKey: bytes.Repeat([]byte{2}, 32),
				WrappedPrivateKey: []byte("wrapped-private"), RekID: "rek-1", CreatedAt: t0, ExpiresAt: t0 + hour},
			"k-empty": {KeyID: "k-empty", TokenID: "it-2", TokenHash: bytes.Repeat([]byte{3}, 32), PublicKey: bytes.Repeat([]byte{4}, 32),
				RekID: "rek-1", CreatedAt: t0, ExpiresAt: t0 + hour, UsedAt: t0 + 1},
		},
		orgs:   map[string]*Organization{org.ID: org},
		tokens: map[string]*Token{token.ID: token, minimal.ID: minimal},
		header: snapshotHeader{Format: SnapshotFormat, Index: 50, Term: 3, ChangeSeq: 8},
	}
}

// richBytes returns richSnapshot in format 2 and in format 1.
func richBytes(t testing.TB) (format2, format1 []byte) {
	t.Helper()
	var b, j bytes.Buffer
	s := richSnapshot()
	if err := s.write(&b); err != nil {
		t.Fatal(err)
	}
	if err := s.writeJSON(&j); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), j.Bytes()
}

// requireSameState fails unless a and b hold the same state.
func requireSameState(t *testing.T, a, b *state) {
	t.Helper()
	seqs := func(s *state) (out []seqEntry) {
		s.bySeq.Ascend(func(e seqEntry) bool { out = append(out, e); return true })
		return out
	}
	if sa, sb := seqs(a), seqs(b); !reflect.DeepEqual(sa, sb) {
		t.Fatalf("change log order %v, want %v", sa, sb)
	}
	if da, db := dueOrder(a), dueOrder(b); !reflect.DeepEqual(da, db) {
		t.Fatalf("scheduler order %v, want %v", da, db)
	}
	ca, cb := *a, *b
	ca.bySeq, cb.bySeq = nil, nil
	ca.due.tree, cb.due.tree = nil, nil
	if !reflect.DeepEqual(ca, cb) {
		for id, k := range a.keys {
			if !reflect.DeepEqual(k, b.keys[id]) {
				t.Errorf("key %s:\n%#v\nwant\n%#v", id, k, b.keys[id])
			}
		}
		t.Fatalf("states differ:\n%#v\nwant\n%#v", ca, cb)
	}
}

func readState(t *testing.T, b []byte) *state {
	t.Helper()
	st, err := readSnapshot(bytes.NewReader(b), "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Both formats of one state restore to identical states, and the keys
// come back as they were: nil and empty lists apart, every field kept.
func TestSnapshot_BothFormatsRestoreTheSameState(t *testing.T) {
	format2, format1 := richBytes(t)
	st2, st1 := readState(t, format2), readState(t, format1)
	requireSameState(t, st2, st1)

	rich := richSnapshot()
	for id, want := range rich.keys {
		if got := st2.keys[id]; !reflect.DeepEqual(got, want) {
			t.Errorf("key %s restored as\n%#v\nwant\n%#v", id, got, want)
		}
	}
	if k := st2.keys["k-empty"]; k.Tags == nil || k.Versions == nil || k.ReplicaZones == nil {
		t.Error("empty lists restored as nil")
	}
	if k := st2.keys["k-zero"]; k.Tags != nil || k.Versions != nil || k.ReplicaZones != nil {
		t.Error("nil lists restored as empty")
	}
	for id, want := range rich.changes {
		got := st2.changes[id]
		if !reflect.DeepEqual(got, want) {
			t.Errorf("change entry %s restored as %+v, want %+v", id, got, want)
		}
		if live, ok := st2.keys[id]; ok && got.Key != nil && (got.Key == live) != (live.Revision == got.Key.Revision) {
			t.Errorf("change entry %s shares the live key: %v", id, got.Key == live)
		}
	}
	if st2.keys["k-full"].Organization != intern(orgA) || st2.keys["k-full"].Versions[1].RekID != "rek-1" {
		t.Error("strings lost")
	}

	// Writing is deterministic (map order does not show), and a restored
	// state writes the bytes it was read from.
	again, _ := richBytes(t)
	if !bytes.Equal(again, format2) {
		t.Error("two writes of one state differ")
	}
	f := newFSM(t)
	if err := restoreBytes(f, format1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, f), format2) {
		t.Error("a state restored from format 1 does not write the format 2 of the original")
	}
	if len(format2) >= len(format1)/2 {
		t.Errorf("format 2 takes %d bytes, format 1 %d", len(format2), len(format1))
	}
}

// testdata/snapshot-format1.jsonl is richSnapshot as Persist wrote it
// before format 2: such snapshots and backups still restore, to the state
// format 2 carries, and writeJSON writes them byte for byte.
func TestSnapshot_Format1FileStillRestores(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot-format1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	format2, _ := richBytes(t)
	requireSameState(t, readState(t, old), readState(t, format2))

	f := newFSM(t)
	if err := restoreBytes(f, old); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jsonSnapshotBytes(t, f), old) {
		t.Error("writeJSON no longer writes format 1 as Persist did")
	}
	if f.AppliedIndex() != 50 || f.ChangeSeq() != 8 {
		t.Errorf("restored at index %d change seq %d, want 50 and 8", f.AppliedIndex(), f.ChangeSeq())
	}
}
