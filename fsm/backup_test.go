package fsm

import (
	"bytes"
	"errors"
	"testing"
)

// checkRenumberChanges: the log holds k4 (seq 2) then k1 (seq 3, its
// rotation pending for zone-2); renumbered above 100 they come back in
// that order as 101 and 102, and the pending version waits for 102.
func checkRenumberChanges(t *testing.T, f *FSM, res Result, index uint64) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("Err = %v", res.Err)
	}
	entries, upto := f.ChangesAfter(100, 0)
	if upto != 102 || len(entries) != 2 || entries[0].KeyID != "k4" || entries[0].Seq != 101 ||
		entries[1].KeyID != "k1" || entries[1].Seq != 102 {
		t.Fatalf("ChangesAfter(100) = %+v upto %d, want k4@101, k1@102", entries, upto)
	}
	if old, _ := f.ChangesAfter(0, 0); len(old) != 2 {
		t.Fatalf("the log holds %d entries after renumbering, want 2", len(old))
	}
	k, _ := f.Key("k1")
	if k.PendingVersion != 2 || k.PendingSeq != 102 || entries[1].Key != k {
		t.Fatalf("k1 pending %d at seq %d (entry holds the current key: %v), want 2 at 102",
			k.PendingVersion, k.PendingSeq, entries[1].Key == k)
	}
	// An acknowledgement of the old sequences does not promote it; one of
	// the new sequence does.
	apply(t, f, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: 3, Now: t0})
	if k, _ := f.Key("k1"); k.CurrentVersion != 1 {
		t.Fatalf("promoted on an ack of the old sequence: current %d", k.CurrentVersion)
	}
	apply(t, f, CmdReplicaAck, ReplicaAckV1{Zone: "zone-2", Seq: 102, Now: t0})
	if k, _ := f.Key("k1"); k.CurrentVersion != 2 || k.PendingVersion != 0 {
		t.Fatalf("after the ack of 102: current %d pending %d", k.CurrentVersion, k.PendingVersion)
	}
	// A log already past the target is left alone.
	before, _ := f.ChangesAfter(0, 0)
	apply(t, f, CmdRenumberChanges, RenumberChangesV1{Above: 50})
	after, head := f.ChangesAfter(0, 0)
	if head != 103 || len(after) != len(before) {
		t.Fatalf("a renumber below the head changed the log: %+v head %d", after, head)
	}
}

func TestBackup_RoundTripsThroughCheckAndRestore(t *testing.T) {
	f := newFSM(t)
	apply(t, f, CmdCreateKey, withReplicas(createKey("k1", orgA), "zone-2"))
	apply(t, f, CmdCreateKey, createKey("k2", orgB))
	var buf bytes.Buffer
	info, err := f.Backup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys != 2 || info.Index != f.AppliedIndex() {
		t.Fatalf("info = %+v, want 2 keys at index %d", info, f.AppliedIndex())
	}
	checked, err := CheckSnapshot(bytes.NewReader(buf.Bytes()), "zone-1")
	if err != nil || checked != info {
		t.Fatalf("CheckSnapshot = %+v, %v, want %+v", checked, err, info)
	}
	g := newFSM(t)
	if err := g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if stateBytes(t, g) != stateBytes(t, f) {
		t.Fatal("restored state differs from the backed-up one")
	}
}

func TestCheckSnapshot_RefusesTruncated(t *testing.T) {
	f := newFSM(t)
	apply(t, f, CmdCreateKey, createKey("k1", orgA))
	var buf bytes.Buffer
	if _, err := f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for _, n := range []int{0, 10, len(b) / 2, len(b) - 2} {
		if _, err := CheckSnapshot(bytes.NewReader(b[:n]), "zone-1"); err == nil {
			t.Errorf("a snapshot cut at %d of %d bytes was accepted", n, len(b))
		}
	}
	if _, err := CheckSnapshot(bytes.NewReader([]byte("{}\n")), "zone-1"); !errors.Is(err, errSnapshot) {
		t.Errorf("err = %v, want errSnapshot", err)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// CheckSnapshot reads backups of both formats, those taken before format
// 2 included, and refuses both cut short.
func TestCheckSnapshot_BothFormats(t *testing.T) {
	format2, format1 := richBytes(t)
	want := SnapshotInfo{Index: 50, Term: 3, Keys: 6, Tombstones: 2, Organizations: 1, Tokens: 2}
	for name, b := range map[string][]byte{"format 2": format2, "format 1": format1} {
		info, err := CheckSnapshot(bytes.NewReader(b), "zone-1")
		if err != nil || info != want {
			t.Errorf("%s: CheckSnapshot = %+v, %v, want %+v", name, info, err, want)
		}
		if _, err := CheckSnapshot(bytes.NewReader(b[:len(b)-2]), "zone-1"); !errors.Is(err, errSnapshot) {
			t.Errorf("%s cut short: err = %v, want errSnapshot", name, err)
		}
	}
	if !ReadsSnapshotFormat(1) || !ReadsSnapshotFormat(SnapshotFormat) || ReadsSnapshotFormat(SnapshotFormat+1) {
		t.Error("ReadsSnapshotFormat does not name the formats CheckSnapshot reads")
	}
}
