package cluster

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/fsm"
)

// Internal tests run bare nodes (no key service, no gin router): the
// node's InternalHandler is served on its own listener, which is all that
// forwarding and read indexes need. Zone-level scenarios live in the
// external package (cluster_test) on top of test/clustertest.

const testToken = "kz_internal_test_token"

type nodeSpec struct {
	id     string
	dir    string // defaults to a fresh temporary directory
	expect int
	join   []string
	tasks  []LeaderTask
	tune   func(*Config)
}

// testConfig returns a valid config with test timings; the addresses ask
// the OS for free ports.
func testConfig(t testing.TB, id, dir, apiAddr string) Config {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Zone, cfg.DataDir = id, "zone-t", dir
	cfg.RaftBind, cfg.GossipBind = "127.0.0.1:0", "127.0.0.1:0"
	cfg.APIAddress = apiAddr
	cfg.InternalToken = testToken
	cfg.RekID = "rek-1"
	cfg.FSM = fsm.New(nil)
	cfg.Logger = testLogger(t)
	cfg.GossipProfile = "local"
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.LeaderWait = 3 * time.Second
	return cfg
}

// testLogger logs to t.Log with KEYZONE_TEST_VERBOSE set, else nowhere.
func testLogger(t testing.TB) hclog.Logger {
	if os.Getenv("KEYZONE_TEST_VERBOSE") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logWriter{t}})
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// startNode opens and starts a node serving its internal routes; it is
// shut down when the test ends.
func startNode(t testing.TB, s nodeSpec) *Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	if dir == "" {
		dir = filepath.Join(t.TempDir(), s.id)
	}
	cfg := testConfig(t, s.id, dir, "http://"+ln.Addr().String())
	cfg.BootstrapExpect = s.expect
	cfg.Join = s.join
	if s.tune != nil {
		s.tune(&cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("open %s: %v", s.id, err)
	}
	for _, task := range s.tasks {
		n.OnLeader(task)
	}
	srv := &http.Server{Handler: n.InternalHandler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve %s: %v", s.id, err)
		}
	}()
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Logf("shutdown %s: %v", s.id, err)
		}
		srv.Close()
		<-done
	})
	if err := n.Start(); err != nil {
		t.Fatalf("start %s: %v", s.id, err)
	}
	return n
}

// startZone starts size nodes with bootstrap-expect size, each joining
// the previous one.
func startZone(t testing.TB, size int, each func(i int, s *nodeSpec)) []*Node {
	t.Helper()
	var nodes []*Node
	var join []string
	for i := 0; i < size; i++ {
		s := nodeSpec{id: "node" + string(rune('1'+i)), expect: size, join: join}
		if each != nil {
			each(i, &s)
		}
		n := startNode(t, s)
		nodes = append(nodes, n)
		join = []string{n.GossipAddress()}
	}
	return nodes
}

// waitLeader waits until one of nodes leads and has passed its Barrier.
func waitLeader(t testing.TB, nodes []*Node) *Node {
	t.Helper()
	var leader *Node
	waitFor(t, 10*time.Second, "a ready leader", func() bool {
		for _, n := range nodes {
			if n.isLeaderReady() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
