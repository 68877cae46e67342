package cluster

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckDataDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	first := Config{NodeID: "node1", Zone: "zone-a", DataDir: dir, RekID: "rek-1"}
	if err := checkDataDir(&first); err != nil {
		t.Fatalf("first start: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		t.Fatalf("identity file: %v", err)
	}
	var got identity
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if want := (identity{NodeID: "node1", Zone: "zone-a", RekID: "rek-1"}); got != want {
		t.Fatalf("identity: got %+v, want %+v", got, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode: got %v (%v), want 0700", fi.Mode().Perm(), err)
	}

	cases := []struct {
		name   string
		change func(*Config)
		want   error
	}{
		{name: "same node", change: func(*Config) {}},
		{name: "other node id", change: func(c *Config) { c.NodeID = "node2" }, want: ErrIdentityMismatch},
		{name: "other zone", change: func(c *Config) { c.Zone = "zone-b" }, want: ErrIdentityMismatch},
		{name: "other root key", change: func(c *Config) { c.RekID = "rek-2" }, want: ErrRootKeyMismatch},
		// The root key is checked first: it is the more dangerous mistake.
		{name: "other node and root key", change: func(c *Config) { c.NodeID, c.RekID = "node2", "rek-2" }, want: ErrRootKeyMismatch},
	}
	for _, tc := range cases {
		c := first
		tc.change(&c)
		err := checkDataDir(&c)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, identityFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkDataDir(&first); err == nil {
		t.Fatal("corrupt identity file: got nil error")
	}
}

// TestOpen_DataDirIdentity: a node started on a data dir written by
// another node id, or under another root key, refuses to start and
// leaves the data dir alone.
func TestOpen_DataDirIdentity(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node1")
	n := startNode(t, nodeSpec{id: "node1", dir: dir, expect: 1})
	waitLeader(t, []*Node{n})
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	other := testConfig(t, "node2", dir, "http://127.0.0.1:1")
	if _, err := Open(other); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("other node id: got %v, want ErrIdentityMismatch", err)
	}
	otherKey := testConfig(t, "node1", dir, "http://127.0.0.1:1")
	otherKey.RekID = "rek-2"
	if _, err := Open(otherKey); !errors.Is(err, ErrRootKeyMismatch) {
		t.Fatalf("other root key: got %v, want ErrRootKeyMismatch", err)
	}

	// The rightful node still starts from it, with its Raft state.
	again, err := Open(testConfig(t, "node1", dir, "http://127.0.0.1:1"))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Shutdown()
	if !again.hasRaftState() {
		t.Fatal("reopened node has no raft state")
	}
}
