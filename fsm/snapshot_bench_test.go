package fsm

import (
	"bytes"
	"flag"
	"io"
	"runtime"
	"strings"
	"testing"
)

// countingSink counts and discards what it is given.
type countingSink struct{ n int }

func (s *countingSink) Write(p []byte) (int, error) { s.n += len(p); return len(p), nil }
func (s *countingSink) ID() string                  { return "count" }
func (s *countingSink) Cancel() error               { return nil }
func (s *countingSink) Close() error                { return nil }

// benchSizes are the state sizes of the snapshot benchmarks. The 1M case
// builds a state of about a gigabyte and takes a minute, so it runs only
// when the -bench pattern names it (`-bench 'SnapshotRestore/keys=1M'`),
// never under -bench=. nor -short.
var snapshotSizes = []struct {
	name string
	n    int
}{{"keys=100k", 100_000}, {"keys=1M", 1_000_000}}

// namedInBench reports whether the -bench pattern spells out name.
func namedInBench(name string) bool {
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), name)
}

// BenchmarkSnapshotRestore persists and restores states of 100k and 1M
// keys with one version each (the scale target's shape), reporting the
// snapshot's bytes beside the time.
func BenchmarkSnapshotRestore(b *testing.B) {
	for _, size := range snapshotSizes {
		b.Run(size.name, func(b *testing.B) {
			if size.n > 100_000 && (testing.Short() || !namedInBench("1M")) {
				b.Skip("1M keys only when the -bench pattern names 1M")
			}
			benchSnapshotRestore(b, size.n)
		})
	}
}

func benchSnapshotRestore(b *testing.B, n int) {
	f := benchFSM()
	buildKeys(b, f, n, 1)
	b.Run("snapshot", func(b *testing.B) {
		// Snapshot only copies the state under the lock: this is how long
		// Apply is held up.
		for b.Loop() {
			snap, err := f.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			snap.Release()
		}
	})
	// Format 1 (JSON, written before format 2 and still read) beside
	// format 2, which Persist writes, for a comparison in one run.
	for _, format := range []struct {
		name  string
		write func(*fsmSnapshot, io.Writer) error
	}{
		{"format=1", (*fsmSnapshot).writeJSON},
		{"format=2", (*fsmSnapshot).write},
	} {
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := format.write(snap.(*fsmSnapshot), &buf); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run("persist/"+format.name, func(b *testing.B) {
			for b.Loop() {
				snap, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				if err := format.write(snap.(*fsmSnapshot), &countingSink{}); err != nil {
					b.Fatal(err)
				}
				snap.Release()
			}
			b.ReportMetric(float64(len(data)), "bytes")
			b.ReportMetric(float64(len(data))/float64(n), "bytes/key")
		})
		b.Run("restore/"+format.name, func(b *testing.B) {
			for b.Loop() {
				g := benchFSM()
				if err := restoreBytes(g, data); err != nil {
					b.Fatal(err)
				}
				if g.KeyCount() != n {
					b.Fatalf("restored %d keys, want %d", g.KeyCount(), n)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
	}
	if n > 100_000 {
		return
	}
	b.Run("list-page", func(b *testing.B) {
		after := benchID(n / 2)
		for b.Loop() {
			keys, _ := f.ListKeys(ListQuery{Organization: orgA, AfterID: after, Limit: 100, Tag: "team-a"})
			if len(keys) != 100 {
				b.Fatalf("page of %d keys, want 100", len(keys))
			}
		}
	})
}

// BenchmarkHeapPerKey reports the live heap per key with 3 versions, and
// with 1 (the scale target's shape).
func BenchmarkHeapPerKey(b *testing.B) {
	const n = 100_000
	for _, versions := range []uint32{1, 3} {
		b.Run(map[uint32]string{1: "versions=1", 3: "versions=3"}[versions], func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				f := benchFSM()
				buildKeys(b, f, n, versions)
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/key")
				runtime.KeepAlive(f)
			}
		})
	}
}
