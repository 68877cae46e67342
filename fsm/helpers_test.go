package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// t0 is the proposer's "now" in tests (unix ns).
const t0 = int64(1_700_000_000_000_000_000)

const (
	hour = int64(time.Hour)
	day  = 24 * hour
)

// testLogger sends the FSM's logs to t.Log.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: tWriter{t}, Level: hclog.Debug})
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newFSM(t testing.TB) *FSM { return New(testLogger(t), WithZone("zone-1")) }

// makeLog builds the raft.Log a leader would commit for a command.
func makeLog(t testing.TB, index uint64, typ CommandType, payload any) *raft.Log {
	t.Helper()
	cmd, err := NewCommand(typ, payload)
	if err != nil {
		t.Fatalf("NewCommand: %v", err)
	}
	data, err := cmd.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// apply applies a command at the next index and returns its Result.
func apply(t testing.TB, f *FSM, typ CommandType, payload any) Result {
	t.Helper()
	out := f.Apply(makeLog(t, f.AppliedIndex()+1, typ, payload))
	res, ok := out.(Result)
	if !ok {
		t.Fatalf("Apply returned %T, want fsm.Result", out)
	}
	return res
}

// mustApply applies a command that must succeed.
func mustApply(t testing.TB, f *FSM, typ CommandType, payload any) *Key {
	t.Helper()
	res := apply(t, f, typ, payload)
	if res.Err != nil {
		t.Fatalf("apply command %d: %v", typ, res.Err)
	}
	return res.Key
}

// step is one command of a test log.
type step struct {
	typ     CommandType
	payload any
}

func applySteps(t testing.TB, f *FSM, steps []step) []Result {
	t.Helper()
	out := make([]Result, len(steps))
	for i, s := range steps {
		out[i] = apply(t, f, s.typ, s.payload)
	}
	return out
}

func wrapped(id string, n uint32) []byte {
	return []byte(fmt.Sprintf("wrapped:%s:%d", id, n))
}

func version(id string, n uint32, now int64) Version {
	return Version{Number: n, Wrapped: wrapped(id, n), RekID: "rek-1", CreatedAt: now}
}

// createKey is a valid CreateKeyV1 for an enabled key with version 1.
func createKey(id, org string) CreateKeyV1 {
	return CreateKeyV1{
		ID:           id,
		Organization: org,
		Name:         "name-" + id,
		Description:  "description of " + id,
		Tags:         []string{"team-a"},
		Usage:        UsageSymmetricEncryption,
		Algorithm:    AlgorithmAES256GCM,
		Origin:       OriginKeyzone,
		PrimaryZone:  "zone-1",
		FirstVersion: version(id, 1, t0),
		Now:          t0,
	}
}

// createExternal is a valid CreateKeyV1 for a pending_import key.
func createExternal(id, org string) CreateKeyV1 {
	p := createKey(id, org)
	p.Origin = OriginExternal
	p.FirstVersion = Version{}
	return p
}

func ref(id, org string, now int64) KeyRefV1 {
	return KeyRefV1{KeyID: id, Organization: org, Now: now}
}

func rotate(id, org string, n uint32, now int64) RotateKeyV1 {
	return RotateKeyV1{KeyRefV1: ref(id, org, now), NewVersion: version(id, n, now)}
}

func scheduleDeletion(id, org string, now, at int64) ScheduleDeletionV1 {
	return ScheduleDeletionV1{KeyRefV1: ref(id, org, now), DeletionAt: at}
}

// memSink is a raft.SnapshotSink writing to memory.
type memSink struct {
	bytes.Buffer
	cancelled, closed bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

// snapshotBytes takes and persists a snapshot of f.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// stateBytes is the snapshot without its header: the state, whatever
// the applied index.
func stateBytes(t testing.TB, f *FSM) string {
	t.Helper()
	return string(withoutHeader(t, snapshotBytes(t, f)))
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func restoreBytes(f *FSM, data []byte) error {
	return f.Restore(readCloser{bytes.NewReader(data)})
}

// roundTrip snapshots f and restores the bytes into a fresh FSM.
func roundTrip(t testing.TB, f *FSM) *FSM {
	t.Helper()
	g := newFSM(t)
	if err := restoreBytes(g, snapshotBytes(t, f)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return g
}

// queryAnswers renders what every query answers about the given ids and
// organizations, so that two FSMs can be compared through their API.
func queryAnswers(t testing.TB, f *FSM, orgs, ids, scopes []string) string {
	t.Helper()
	type answers struct {
		Applied     uint64
		Count       int
		Lists       map[string][]*Key
		Pages       map[string][]string
		Keys        map[string]*Key
		Tombstoned  map[string]bool
		Idempotency map[string]*IdempotencyRecord
		Rotations   []*Key
		Purges      []*Key
		Expired     bool
	}
	a := answers{
		Applied:     f.AppliedIndex(),
		Count:       f.KeyCount(),
		Lists:       map[string][]*Key{},
		Pages:       map[string][]string{},
		Keys:        map[string]*Key{},
		Tombstoned:  map[string]bool{},
		Idempotency: map[string]*IdempotencyRecord{},
		Rotations:   f.DueRotations(math.MaxInt64),
		Purges:      f.DuePurges(math.MaxInt64),
		Expired:     f.HasExpiredIdempotency(math.MaxInt64),
	}
	for _, org := range orgs {
		a.Lists[org], _ = f.ListKeys(ListQuery{Organization: org})
		after := ""
		for {
			page, more := f.ListKeys(ListQuery{Organization: org, AfterID: after, Limit: 1})
			for _, k := range page {
				a.Pages[org] = append(a.Pages[org], k.ID)
				after = k.ID
			}
			if !more {
				break
			}
		}
	}
	for _, id := range ids {
		if k, ok := f.Key(id); ok {
			a.Keys[id] = k
		}
		a.Tombstoned[id] = f.IsTombstoned(id)
	}
	for _, s := range scopes {
		if r, ok := f.Idempotency(s); ok {
			a.Idempotency[s] = &r
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatalf("marshal answers: %v", err)
	}
	return string(b)
}

// withReplicas makes p a multi-zone key of zone-1 with the given replicas.
func withReplicas(p CreateKeyV1, zones ...string) CreateKeyV1 {
	p.ReplicaZones = zones
	return p
}

// remoteKey is the state of a key of primary zone `primary` replicated to
// `replicas`, as its primary's change log carries it.
func remoteKey(id, org, primary string, replicas ...string) *Key {
	return &Key{
		ID: id, Organization: org, Name: "name-" + id, Tags: []string{}, Usage: UsageSymmetricEncryption,
		Algorithm: AlgorithmAES256GCM, Origin: OriginKeyzone, State: KeyStateEnabled,
		Versions:       []Version{{Number: 1, Wrapped: wrapped(id, 1), RekID: "rek-1", CreatedAt: t0, State: VersionStateEnabled}},
		CurrentVersion: 1, PrimaryZone: primary, ReplicaZones: replicas, CreatedAt: t0, UpdatedAt: t0, Revision: 7,
	}
}
