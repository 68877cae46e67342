package fsm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// applyPanic applies l and returns the panic message, or "" if none.
func applyPanic(f *FSM, l *raft.Log) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f.Apply(l)
	return ""
}

func rawLog(index uint64, c Command) *raft.Log {
	data, _ := json.Marshal(c)
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func TestFSM_Apply_Unapplicable_Panics(t *testing.T) {
	valid, _ := json.Marshal(ref("k1", orgA, t0))
	tests := []struct {
		name string
		log  *raft.Log
		want []string // substrings of the panic message
	}{
		{"unknown mandatory type", rawLog(0, Command{Type: 99, Version: 1, Payload: valid}), []string{"type 99"}},
		{"unknown mandatory type 0", rawLog(0, Command{Type: 0, Version: 1, Payload: valid}), []string{"type 0"}},
		{"unknown version", rawLog(0, Command{Type: CmdEnableKey, Version: 2, Payload: valid}), []string{"type 3", "version 2"}},
		{"version 0", rawLog(0, Command{Type: CmdEnableKey, Version: 0, Payload: valid}), []string{"type 3", "version 0"}},
		{"undecodable entry", &raft.Log{Type: raft.LogCommand, Data: []byte("{not json")}, nil},
		{"undecodable payload", rawLog(0, Command{Type: CmdEnableKey, Version: 1, Payload: json.RawMessage(`{"key_id":7}`)}), []string{"type 3", "version 1"}},
		{"missing payload", rawLog(0, Command{Type: CmdEnableKey, Version: 1}), []string{"type 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
			mustApply(t, f, CmdDisableKey, ref("k1", orgA, t0))
			before, applied := stateBytes(t, f), f.AppliedIndex()
			tt.log.Index = applied + 1
			msg := applyPanic(f, tt.log)
			if msg == "" {
				t.Fatal("Apply did not panic")
			}
			for _, w := range append(tt.want, fmt.Sprintf("index %d", applied+1)) {
				if !strings.Contains(msg, w) {
					t.Errorf("panic %q does not mention %q", msg, w)
				}
			}
			if f.AppliedIndex() != applied || stateBytes(t, f) != before {
				t.Error("a panicking Apply changed the state")
			}
		})
	}
}

func TestFSM_Apply_IgnorableUnknownType(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
	before := stateBytes(t, f)
	payload, _ := json.Marshal(map[string]any{"anything": []int{1, 2}})
	out := f.Apply(rawLog(2, Command{Type: IgnorableCommandFlag | 42, Version: 9, Payload: payload}))
	if res, ok := out.(Result); !ok || res.Key != nil || res.Err != nil {
		t.Fatalf("Apply = %#v, want Result{}", out)
	}
	if f.AppliedIndex() != 2 {
		t.Errorf("AppliedIndex = %d, want 2", f.AppliedIndex())
	}
	if stateBytes(t, f) != before {
		t.Error("ignored command changed the state")
	}
}

// Entries that are not commands (raft hands the FSM only LogCommand, but
// a batching caller could) advance the index and change nothing.
func TestFSM_Apply_NonCommandLog(t *testing.T) {
	f := newFSM(t)
	out := f.Apply(&raft.Log{Index: 5, Term: 2, Type: raft.LogNoop})
	if res, ok := out.(Result); !ok || res != (Result{}) {
		t.Fatalf("Apply = %#v, want Result{}", out)
	}
	if f.AppliedIndex() != 5 {
		t.Errorf("AppliedIndex = %d, want 5", f.AppliedIndex())
	}
}

// Keys handed out by queries and results are never mutated afterwards,
// so readers may use them without locks while Apply goes on (run with -race).
func TestFSM_ConcurrentReaders(t *testing.T) {
	f := newFSM(t)
	for i := 0; i < 50; i++ {
		mustApply(t, f, CmdCreateKey, createKey(fmt.Sprintf("k%02d", i), orgA))
	}
	done := make(chan struct{})
	readErr := make(chan string, 1)
	go func() {
		defer close(readErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			keys, _ := f.ListKeys(ListQuery{Organization: orgA, Limit: 10})
			for _, k := range keys {
				if v, ok := k.Version(k.CurrentVersion); ok && len(v.Wrapped) == 0 && k.State != KeyStatePendingImport {
					readErr <- fmt.Sprintf("key %s current version without material", k.ID)
					return
				}
				_ = len(k.Tags) + len(k.Name)
			}
			f.Key("k01")
			f.DueRotations(t0 + 100*day)
			f.DuePurges(t0 + 100*day)
			f.HasExpiredIdempotency(t0)
			f.KeyCount()
			if _, err := f.Snapshot(); err != nil {
				readErr <- err.Error()
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("k%02d", i)
		mustApply(t, f, CmdRotateKey, rotate(id, orgA, 2, t0+hour))
		name := "n"
		mustApply(t, f, CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref(id, orgA, t0+hour), Name: &name})
		mustApply(t, f, CmdScheduleDeletion, scheduleDeletion(id, orgA, t0+hour, t0+day))
		mustApply(t, f, CmdPurgeKey, PurgeKeyV1{KeyID: id, Now: t0 + day})
	}
	close(done)
	if msg, ok := <-readErr; ok {
		t.Fatal(msg)
	}
}
