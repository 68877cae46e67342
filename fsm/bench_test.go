package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func benchFSM() *FSM { return New(hclog.NewNullLogger(), WithZone("zone-1")) }

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
	b.Run("update", func(b *testing.B) {
		f := benchFSM()
		const keys = 1000
		buildKeys(b, f, keys, 1)
		steps := make([]step, b.N)
		for i := range steps {
			desc := fmt.Sprintf("description %d", i)
			steps[i] = step{CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref(benchID(i%keys), orgA, t0), Description: &desc}}
		}
		benchSteps(b, f, steps)
	})
	b.Run("protect-unprotect", func(b *testing.B) {
		f := benchFSM()
		const keys = 1000
		buildKeys(b, f, keys, 1)
		steps := make([]step, b.N)
		for i := range steps {
			typ := CmdProtectKey
			if (i/keys)%2 == 1 {
				typ = CmdUnprotectKey
			}
			steps[i] = step{typ, ref(benchID(i%keys), orgA, t0)}
		}
		benchSteps(b, f, steps)
	})
	b.Run("schedule-cancel-deletion", func(b *testing.B) {
		f := benchFSM()
		const keys = 1000
		buildKeys(b, f, keys, 1)
		steps := make([]step, b.N)
		for i := range steps {
			id := benchID(i % keys)
			switch (i / keys) % 3 {
			case 0:
				steps[i] = step{CmdScheduleDeletion, scheduleDeletion(id, orgA, t0, t0+int64(7*24*time.Hour))}
			case 1:
				steps[i] = step{CmdCancelDeletion, ref(id, orgA, t0)}
			default: // cancel leaves the key disabled
				steps[i] = step{CmdEnableKey, ref(id, orgA, t0)}
			}
		}
		benchSteps(b, f, steps)
	})
	b.Run("set-replica-zones", func(b *testing.B) {
		f := benchFSM()
		const keys = 1000
		buildKeys(b, f, keys, 1)
		sets := [][]string{{"zone-2"}, {"zone-2", "zone-3"}}
		steps := make([]step, b.N)
		for i := range steps {
			steps[i] = step{CmdSetReplicaZones, SetReplicaZonesV1{KeyRefV1: ref(benchID(i%keys), orgA, t0), ReplicaZones: sets[(i/keys)%2]}}
		}
		benchSteps(b, f, steps)
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

// benchSteps encodes steps, then applies them as the measured part.
func benchSteps(b *testing.B, f *FSM, steps []step) {
	b.Helper()
	logs := encodeLogs(b, f.AppliedIndex()+1, steps)
	b.ReportAllocs()
	b.ResetTimer()
	for _, l := range logs {
		if res := f.Apply(l).(Result); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkSchedulerTick: what the leader's scheduler asks of the state
// every tick (the keys due for rotation and for purge) with 100k keys, a
// tenth of them rotating, none due.
func BenchmarkSchedulerTick(b *testing.B) {
	const n = 100_000
	f := benchFSM()
	buildKeys(b, f, n, 1)
	for i := 0; i < n; i += 10 {
		pol := RotationPolicy{Period: int64(24 * time.Hour), NextRotationAt: t0 + int64(24*time.Hour)}
		p := UpdateKeyV1{KeyRefV1: ref(benchID(i), orgA, t0), RotationPolicy: &pol}
		if res := f.Apply(makeLog(b, f.AppliedIndex()+1, CmdUpdateKey, p)).(Result); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(f.DueRotations(t0)) != 0 || len(f.DuePurges(t0)) != 0 {
			b.Fatal("keys due")
		}
	}
}
