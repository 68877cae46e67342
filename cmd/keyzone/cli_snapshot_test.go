package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/snapshot"
)

func testArchive(t *testing.T, state []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(state)
	var b bytes.Buffer
	err := snapshot.Write(&b, snapshot.Meta{
		CreatedAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Zone: "zone-a", NodeID: "a1", RekID: "rek-test",
		Index: 77, Term: 2, StateFormat: 1, StateSize: int64(len(state)), StateSHA256: hex.EncodeToString(sum[:]), Keys: 3,
	}, bytes.NewReader(state), []byte("mac key"))
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCLI_SnapshotSaveInspectRestore(t *testing.T) {
	e := newCLITestEnv(t)
	state := []byte(strings.Repeat(`{"type":"key"}`+"\n", 50))
	e.cluster.Archive = testArchive(t, state)
	dir := t.TempDir()
	path := filepath.Join(dir, "zone-a.snap")

	out := string(e.mustRun(t, nil, "cluster", "snapshot", "save", path))
	for _, want := range []string{"Saved a snapshot of 3 keys.", "zone-a", "77 (term 2)", "rek-test"} {
		if !strings.Contains(out, want) {
			t.Errorf("save output lacks %q:\n%s", want, out)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, e.cluster.Archive) {
		t.Fatalf("saved file differs from the archive served (%v)", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
		t.Errorf("the .part file is left behind: %v", err)
	}

	insp := cliJSON[snapshotSummary](t, e.mustRun(t, nil, "cluster", "snapshot", "inspect", path, "-o", "json"))
	if insp.Meta.Keys != 3 || insp.Meta.Index != 77 || insp.Size != int64(len(got)) {
		t.Fatalf("inspect = %+v", insp)
	}

	res := cliJSON[snapshotSummary](t, e.mustRun(t, nil, "cluster", "snapshot", "restore", path, "-o", "json"))
	if res.Meta.Keys != 3 || !bytes.Equal(e.cluster.Restored, state) {
		t.Fatalf("restore = %+v; the node got %d bytes of state", res, len(e.cluster.Restored))
	}
}

func TestCLI_SnapshotRefusesDamagedFiles(t *testing.T) {
	e := newCLITestEnv(t)
	good := testArchive(t, []byte(strings.Repeat("state line\n", 100)))
	dir := t.TempDir()

	// A damaged file is refused before anything is sent.
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0xff
	badPath := filepath.Join(dir, "bad.snap")
	if err := os.WriteFile(badPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.run(t, nil, "cluster", "snapshot", "restore", badPath)
	if err == nil || !strings.Contains(err.Error(), "not restoring") || !strings.Contains(err.Error(), "invalid snapshot") {
		t.Fatalf("restore of a damaged file: %v", err)
	}
	if e.cluster.Restored != nil {
		t.Fatal("a damaged file reached the node")
	}
	if _, err := e.run(t, nil, "cluster", "snapshot", "inspect", badPath); err == nil {
		t.Fatal("inspect accepted a damaged file")
	}

	// A damaged archive from the node is not saved.
	e.cluster.Archive = good[:len(good)-10]
	path := filepath.Join(dir, "cut.snap")
	if _, err := e.run(t, nil, "cluster", "snapshot", "save", path); err == nil || !strings.Contains(err.Error(), "does not check out") {
		t.Fatalf("save of a cut archive: %v", err)
	}
	for _, p := range []string{path, path + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed save", p)
		}
	}
}
