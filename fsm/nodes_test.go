package fsm

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// checkRemoveNode is the check of the RemoveNode case of commandCases.
func checkRemoveNode(t *testing.T, f *FSM, res Result, index uint64) {
	t.Helper()
	if res.Err != nil || res.Key != nil {
		t.Fatalf("Result = %+v, want zero", res)
	}
	want := RemovedNode{NodeID: "n3", Zone: "zone-1", RemovedAt: t0}
	if got, ok := f.RemovedNode("n3"); !ok || got != want {
		t.Errorf("RemovedNode(n3) = %+v, %v, want %+v", got, ok, want)
	}
	if _, ok := f.RemovedNode("n1"); ok {
		t.Error("RemovedNode(n1) found, want only n3")
	}
	if f.KeyCount() != 2 {
		t.Errorf("KeyCount = %d, want 2: a removal touches no key", f.KeyCount())
	}
}

func removeNode(id string, at int64) step {
	return step{CmdRemoveNode, RemoveNodeV1{NodeID: id, Zone: "zone-1", RemovedAt: at}}
}

func TestFSM_RemoveNode_Invalid(t *testing.T) {
	tests := []struct {
		name string
		p    RemoveNodeV1
	}{
		{name: "no node id", p: RemoveNodeV1{Zone: "zone-1", RemovedAt: t0}},
		{name: "no zone", p: RemoveNodeV1{NodeID: "n1", RemovedAt: t0}},
		{name: "another zone", p: RemoveNodeV1{NodeID: "n1", Zone: "zone-2", RemovedAt: t0}},
		{name: "no time", p: RemoveNodeV1{NodeID: "n1", Zone: "zone-1"}},
		{name: "negative time", p: RemoveNodeV1{NodeID: "n1", Zone: "zone-1", RemovedAt: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			before := stateBytes(t, f)
			res := apply(t, f, CmdRemoveNode, tt.p)
			if !errors.Is(res.Err, ErrInvalidCommand) {
				t.Fatalf("Err = %v, want ErrInvalidCommand", res.Err)
			}
			if got := stateBytes(t, f); got != before {
				t.Errorf("a refused removal changed the state:\n%s", got)
			}
			if f.AppliedIndex() != 1 {
				t.Errorf("AppliedIndex = %d, want 1 (refused entries advance it too)", f.AppliedIndex())
			}
		})
	}
}

// TestFSM_RemoveNode_KeepsFirstTime: a removal retried after an unknown
// outcome is a no-op that keeps the first time; other ids accumulate and
// list sorted.
func TestFSM_RemoveNode_KeepsFirstTime(t *testing.T) {
	f := newFSM(t)
	applySteps(t, f, []step{removeNode("n3", t0), removeNode("n1", t0+hour)})
	if res := apply(t, f, CmdRemoveNode, RemoveNodeV1{NodeID: "n3", Zone: "zone-1", RemovedAt: t0 + day}); res.Err != nil {
		t.Fatalf("repeat: Err = %v, want nil", res.Err)
	}
	want := []RemovedNode{
		{NodeID: "n1", Zone: "zone-1", RemovedAt: t0 + hour},
		{NodeID: "n3", Zone: "zone-1", RemovedAt: t0},
	}
	if got := f.RemovedNodes(); !slices.Equal(got, want) {
		t.Errorf("RemovedNodes = %+v, want %+v", got, want)
	}
}

// TestFSM_RemoveNode_SingleZoneAcceptsAnyZone: an FSM without a zone
// (single-zone tests and tools) records the zone it is given.
func TestFSM_RemoveNode_SingleZoneAcceptsAnyZone(t *testing.T) {
	f := New(testLogger(t))
	if res := apply(t, f, CmdRemoveNode, RemoveNodeV1{NodeID: "n1", Zone: "zone-9", RemovedAt: t0}); res.Err != nil {
		t.Fatalf("Err = %v", res.Err)
	}
	if r, ok := f.RemovedNode("n1"); !ok || r.Zone != "zone-9" {
		t.Errorf("RemovedNode = %+v, %v", r, ok)
	}
}

// TestFSM_RemoveNode_SnapshotRoundTrip: the removed set survives a
// snapshot (the records are sorted, counted in the end record), restore
// replaces it rather than merging, and two FSMs that applied the same log
// answer the same.
func TestFSM_RemoveNode_SnapshotRoundTrip(t *testing.T) {
	log := []step{
		{CmdCreateKey, createKey("k1", orgA)},
		removeNode("n3", t0), removeNode("n1", t0+hour),
	}
	f := newFSM(t)
	applySteps(t, f, log)
	snap := snapshotBytes(t, f)
	text := string(snap)
	if i, j := strings.Index(text, `"node_id":"n1"`), strings.Index(text, `"node_id":"n3"`); i < 0 || j < i {
		t.Errorf("removed node records missing or unsorted:\n%s", text)
	}
	if !strings.Contains(text, `"removed_nodes":2`) {
		t.Errorf("end record does not count the removed nodes:\n%s", text)
	}

	g := newFSM(t)
	applySteps(t, g, []step{removeNode("stale", t0)})
	if err := restoreBytes(g, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := g.RemovedNodes(), f.RemovedNodes(); !slices.Equal(got, want) {
		t.Errorf("restored RemovedNodes = %+v, want %+v", got, want)
	}
	if !bytes.Equal(snapshotBytes(t, g), snap) {
		t.Error("restored FSM writes another snapshot")
	}

	h := newFSM(t)
	applySteps(t, h, log)
	if !slices.Equal(h.RemovedNodes(), f.RemovedNodes()) || !bytes.Equal(snapshotBytes(t, h), snap) {
		t.Error("two FSMs that applied the same log differ")
	}
}

// TestFSM_RemoveNode_SnapshotWithoutRemovals: with no removed node the
// stream has no trace of them, so it reads the same to a node that
// predates them.
func TestFSM_RemoveNode_SnapshotWithoutRemovals(t *testing.T) {
	f := newFSM(t)
	applySteps(t, f, []step{{CmdCreateKey, createKey("k1", orgA)}})
	if text := string(snapshotBytes(t, f)); strings.Contains(text, "removed") {
		t.Errorf("snapshot mentions removals:\n%s", text)
	}
}

func TestFSM_RemoveNode_RestoreRejectsMalformed(t *testing.T) {
	f := newFSM(t)
	applySteps(t, f, []step{removeNode("n1", t0)})
	good := string(jsonSnapshotBytes(t, f))
	rec := `{"type":"removed_node","removed_node":{"node_id":"n1","zone":"zone-1","removed_at":` + strconv.FormatInt(t0, 10) + "}}\n"
	if !strings.Contains(good, rec) {
		t.Fatalf("snapshot lacks %s:\n%s", rec, good)
	}
	tests := []struct {
		name, data string
	}{
		{name: "duplicate", data: strings.Replace(good, rec, rec+rec, 1)},
		{name: "no node id", data: strings.Replace(good, `"node_id":"n1"`, `"node_id":""`, 1)},
		{name: "no record body", data: strings.Replace(good, rec, `{"type":"removed_node"}`+"\n", 1)},
		{name: "uncounted", data: strings.Replace(good, `"removed_nodes":1`, `"removed_nodes":2`, 1)},
		{name: "count missing", data: strings.Replace(good, `,"removed_nodes":1`, ``, 1)},
		{name: "unknown field", data: strings.Replace(good, `"zone":"zone-1"`, `"zone":"zone-1","extra":1`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.data == good {
				t.Fatal("the case does not change the snapshot")
			}
			g := newFSM(t)
			applySteps(t, g, []step{removeNode("kept", t0)})
			if err := restoreBytes(g, []byte(tt.data)); err == nil {
				t.Fatal("Restore accepted a malformed snapshot")
			}
			if _, ok := g.RemovedNode("kept"); !ok {
				t.Error("a failed restore dropped the current state")
			}
		})
	}
}
