package fsm

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func benchFSM() *FSM { return New(hclog.NewNullLogger()) }

// benchID spreads ids like random key ids do.
func benchID(i int) string { return fmt.Sprintf("%08x-%06d", uint32(i)*2654435761, i) }

// benchVersion is a version with realistically sized wrapped material
// (32 bytes sealed with AES-GCM: 12 nonce + 32 + 16 tag).
func benchVersion(id string, n uint32) Version {
	return Version{Number: n, Wrapped: bytes.Repeat([]byte{byte(n)}, 60), RekID: "rek-1", CreatedAt: t0}
}

func benchCreate(id string) CreateKeyV1 {
	p := createKey(id, orgA)
	p.FirstVersion = benchVersion(id, 1)
	return p
}

// encodeLogs pre-encodes commands so that benchmarks measure Apply.
func encodeLogs(b *testing.B, first uint64, steps []step) []*raft.Log {
	logs := make([]*raft.Log, len(steps))
	for i, s := range steps {
		logs[i] = makeLog(b, first+uint64(i), s.typ, s.payload)
	}
	return logs
}

// buildKeys applies n creates, each followed by rotations up to versions.
func buildKeys(b *testing.B, f *FSM, n int, versions uint32) {
	b.Helper()
	for i := 0; i < n; i++ {
		id := benchID(i)
		if res := f.Apply(makeLog(b, f.AppliedIndex()+1, CmdCreateKey, benchCreate(id))).(Result); res.Err != nil {
			b.Fatal(res.Err)
		}
		for v := uint32(2); v <= versions; v++ {
			p := RotateKeyV1{KeyRefV1: ref(id, orgA, t0), NewVersion: benchVersion(id, v)}
			if res := f.Apply(makeLog(b, f.AppliedIndex()+1, CmdRotateKey, p)).(Result); res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	}
}

func BenchmarkApply(b *testing.B) {
	b.Run("create", func(b *testing.B) {
		steps := make([]step, b.N)
		for i := range steps {
			steps[i] = step{CmdCreateKey, benchCreate(benchID(i))}
		}
		logs := encodeLogs(b, 1, steps)
		f := benchFSM()
		b.ReportAllocs()
		b.ResetTimer()
		for _, l := range logs {
			if res := f.Apply(l).(Result); res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	})
	b.Run("rotate", func(b *testing.B) {
		f := benchFSM()
		keys := max(1000, b.N/4) // at most 5 versions per key
		buildKeys(b, f, keys, 1)
		steps := make([]step, b.N)
		for i := range steps {
			id := benchID(i % keys)
			steps[i] = step{CmdRotateKey, RotateKeyV1{KeyRefV1: ref(id, orgA, t0), NewVersion: benchVersion(id, uint32(i/keys)+2)}}
		}
		logs := encodeLogs(b, f.AppliedIndex()+1, steps)
		b.ReportAllocs()
		b.ResetTimer()
		for _, l := range logs {
			if res := f.Apply(l).(Result); res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	})
	b.Run("enable-disable", func(b *testing.B) {
		f := benchFSM()
		const keys = 1000
		buildKeys(b, f, keys, 3)
		steps := make([]step, b.N)
		for i := range steps {
			typ := CmdDisableKey
			if (i/keys)%2 == 1 {
				typ = CmdEnableKey
			}
			steps[i] = step{typ, ref(benchID(i%keys), orgA, t0)}
		}
		logs := encodeLogs(b, f.AppliedIndex()+1, steps)
		b.ReportAllocs()
		b.ResetTimer()
		for _, l := range logs {
			if res := f.Apply(l).(Result); res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	})
}

// countingSink discards what it is given.
type countingSink struct{ n int }

func (s *countingSink) Write(p []byte) (int, error) { s.n += len(p); return len(p), nil }
func (s *countingSink) ID() string                  { return "count" }
func (s *countingSink) Cancel() error               { return nil }
func (s *countingSink) Close() error                { return nil }

// BenchmarkSnapshotRestore persists and restores 100k keys of 3 versions.
func BenchmarkSnapshotRestore(b *testing.B) {
	const n = 100_000
	f := benchFSM()
	buildKeys(b, f, n, 3)
	b.Run("snapshot", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			snap, err := f.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			snap.Release()
		}
	})
	data := snapshotBytes(b, f)
	b.Run("persist", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			snap, err := f.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			var sink countingSink
			if err := snap.Persist(&sink); err != nil {
				b.Fatal(err)
			}
			snap.Release()
		}
		b.ReportMetric(float64(len(data)), "bytes")
		b.ReportMetric(float64(len(data))/n, "bytes/key")
	})
	b.Run("restore", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			g := benchFSM()
			if err := restoreBytes(g, data); err != nil {
				b.Fatal(err)
			}
			if g.KeyCount() != n {
				b.Fatalf("restored %d keys", g.KeyCount())
			}
		}
	})
	b.Run("list-page", func(b *testing.B) {
		after := benchID(n / 2)
		for i := 0; i < b.N; i++ {
			keys, _ := f.ListKeys(ListQuery{Organization: orgA, AfterID: after, Limit: 100, Tag: "team-a"})
			if len(keys) != 100 {
				b.Fatalf("page of %d", len(keys))
			}
		}
	})
}

// BenchmarkHeapPerKey reports the live heap per key with 3 versions.
func BenchmarkHeapPerKey(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := benchFSM()
		buildKeys(b, f, n, 3)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/key")
		runtime.KeepAlive(f)
	}
}
