package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/snapshot"
)

// TestSnapshot_StaleTempFilesRemovedAtStart: the temporary files of a save
// or restore cut short by a crash are gone once the node is back; the
// node's own files are not touched.
func TestSnapshot_StaleTempFilesRemovedAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := []string{"backup-123.tmp", "backup-state-456.tmp", "restore-state-789.tmp"}
	for _, f := range append(stale, "keep.tmp") {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startNode(t, nodeSpec{id: "node1", dir: dir, expect: 1})
	for _, f := range stale {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s survived the start: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.tmp")); err != nil {
		t.Errorf("a file that is not a snapshot temporary was removed: %v", err)
	}
}

// TestSnapshot_SaveLeavesNoTempFiles: a save on the leader leaves nothing
// in the data dir once the archive is closed, and the archive reads back
// under the node's MAC key.
func TestSnapshot_SaveLeavesNoTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	n := startNode(t, nodeSpec{id: "node1", dir: dir, expect: 1})
	waitLeader(t, []*Node{n})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := n.SaveSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := archive.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if int64(archive.Len()) != b.Size {
		t.Fatalf("archive of %d bytes, Size says %d", archive.Len(), b.Size)
	}
	m, err := snapshot.Read(&archive, &bytes.Buffer{}, snapshot.ReadOptions{MACKey: n.snapshotMACKey()})
	if err != nil || m.Zone != "zone-t" || m.NodeID != "node1" || m.RekID != "rek-1" || m.StateFormat != fsm.SnapshotFormat {
		t.Fatalf("archive meta %+v, %v", m, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
