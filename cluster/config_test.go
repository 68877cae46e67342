package cluster

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	valid := testConfig(t, "node1", t.TempDir(), "http://127.0.0.1:1")
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{name: "node id", change: func(c *Config) { c.NodeID = "" }, want: "node id is required"},
		{name: "zone", change: func(c *Config) { c.Zone = "" }, want: "zone is required"},
		{name: "data dir", change: func(c *Config) { c.DataDir = "" }, want: "data dir is required"},
		{name: "raft bind", change: func(c *Config) { c.RaftBind = "" }, want: "raft bind address"},
		{name: "raft bind without port", change: func(c *Config) { c.RaftBind = "127.0.0.1" }, want: "raft bind address"},
		{name: "raft advertise", change: func(c *Config) { c.RaftAdvertise = "host" }, want: "raft advertise address"},
		{name: "gossip bind", change: func(c *Config) { c.GossipBind = "" }, want: "gossip bind address"},
		{name: "gossip advertise", change: func(c *Config) { c.GossipAdvertise = "host" }, want: "gossip advertise address"},
		{name: "api address", change: func(c *Config) { c.APIAddress = "" }, want: "api address is required"},
		{name: "internal token", change: func(c *Config) { c.InternalToken = "" }, want: "internal token is required"},
		{name: "root key id", change: func(c *Config) { c.RekID = "" }, want: "root key id is required"},
		{name: "fsm", change: func(c *Config) { c.FSM = nil }, want: "fsm is required"},
		{name: "negative bootstrap-expect", change: func(c *Config) { c.BootstrapExpect = -1 }, want: "bootstrap-expect must not be negative"},
		{name: "gossip profile", change: func(c *Config) { c.GossipProfile = "wan" }, want: `gossip profile "wan"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}

	// Every problem is reported at once.
	var empty Config
	err := empty.Validate()
	for _, want := range []string{"node id", "zone", "data dir", "raft bind", "gossip bind", "api address", "internal token", "fsm", "root key id"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("empty config: got %v, want it to name %q", err, want)
		}
	}
	// Open refuses an invalid config before touching the disk.
	dir := filepath.Join(t.TempDir(), "never")
	bad := valid
	bad.DataDir, bad.InternalToken = dir, ""
	if _, err := Open(bad); err == nil {
		t.Fatal("Open with an invalid config: got nil error")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open with an invalid config created %s", dir)
	}
}
