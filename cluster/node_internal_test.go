package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/keyzone/keyzone/fsm"
)

// noteCommand returns a command of an ignorable type (Apply skips it)
// that carries tag, so that a test can find it in the Raft log.
func noteCommand(t testing.TB, tag string) []byte {
	t.Helper()
	cmd, err := fsm.NewCommand(fsm.IgnorableCommandFlag|0x7001, map[string]string{"tag": tag})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isOutcomeUnknown(err error) bool {
	var u interface{ OutcomeUnknown() bool }
	return errors.As(err, &u) && u.OutcomeUnknown()
}

// TestNode_ReadIndex_RefusedUntilBarrierOfNewTerm: a node that loses
// leadership and wins it back in a later term must not answer read
// indexes until it has passed the Barrier of the new term. Here the
// leadership loop is held up by a leader task that is slow to return
// (as one blocked in a proposal is), so the node leads again before the
// loop has even processed the loss.
func TestNode_ReadIndex_RefusedUntilBarrierOfNewTerm(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	slowTask := func(ctx context.Context) {
		<-ctx.Done()
		<-release
	}
	nodes := startZone(t, 3, func(_ int, s *nodeSpec) { s.tasks = []LeaderTask{slowTask} })
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the nodes shut down

	first := waitLeader(t, nodes)
	firstTerm := first.raft.CurrentTerm()
	if err := first.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatalf("transfer leadership away: %v", err)
	}
	var second *Node
	waitFor(t, 10*time.Second, "another leader", func() bool {
		for _, n := range nodes {
			if n != first && n.raft.State() == raft.Leader {
				second = n
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "first leader is a known follower", func() bool {
		return first.raft.State() == raft.Follower && second.raft.AppliedIndex() >= second.raft.LastIndex()
	})
	// Whoever leads hands leadership back to the first node; on a loaded
	// machine leadership may move on its own in between, so ask again.
	waitFor(t, 20*time.Second, "first node leads again", func() bool {
		if first.raft.State() == raft.Leader {
			return true
		}
		for _, n := range nodes {
			if n != first && n.raft.State() == raft.Leader {
				_ = n.raft.LeadershipTransferToServer(raft.ServerID(first.ID()), raft.ServerAddress(first.RaftAddress())).Error()
			}
		}
		return first.raft.State() == raft.Leader
	})
	if term := first.raft.CurrentTerm(); term <= firstTerm {
		t.Fatalf("got term %d after two transfers, want more than %d", term, firstTerm)
	}

	// The leadership loop is still waiting for the slow task of the first
	// term: no Barrier has run in this term.
	if idx, err := first.leaderReadIndex(); !errors.Is(err, errNotLeader) {
		t.Fatalf("read index before the new term's barrier: got (%d, %v), want errNotLeader", idx, err)
	}
	if h := first.Health(context.Background()); h.Ready {
		t.Fatalf("health before the new term's barrier: got ready, want not ready")
	}

	once.Do(func() { close(release) })
	waitFor(t, 10*time.Second, "leader ready in the new term", first.isLeaderReady)
	if _, err := first.leaderReadIndex(); err != nil {
		t.Fatalf("read index after the barrier: %v", err)
	}
}

// TestNode_StatusWhileStarting: the API listens before the node starts,
// so status and proposals may run while Start sets the pool up (run with
// -race).
func TestNode_StatusWhileStarting(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	cfg := testConfig(t, "node1", filepath.Join(t.TempDir(), "node1"), "http://"+ln.Addr().String())
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			_, _ = n.Status(context.Background())
			_ = n.GossipAddress()
			_, _ = n.leaderMember()
		}
	}()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	if n.GossipAddress() == "" {
		t.Fatal("got no gossip address after Start")
	}
}

// TestInternalHandler_Refusals: the internal routes need the internal
// token, and a command that the FSM could not apply never reaches the
// log (it would stop every node of the zone, again at each restart).
func TestInternalHandler_Refusals(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeSpec{id: "node1", expect: 1})
	waitLeader(t, []*Node{n})
	h := n.InternalHandler()

	do := func(method, path, auth, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var ie internalError
		_ = json.Unmarshal(rec.Body.Bytes(), &ie)
		return rec.Code, ie.Code
	}
	valid := string(noteCommand(t, "valid"))
	auth := []struct {
		name, header string
	}{
		{name: "missing", header: ""},
		{name: "wrong", header: "Bearer nope"},
		{name: "not bearer", header: "Basic " + testToken},
		{name: "no scheme", header: testToken},
		{name: "prefix of token", header: "Bearer " + testToken[:len(testToken)-1]},
	}
	for _, tc := range auth {
		for _, route := range []struct{ method, path string }{{"POST", internalPropose}, {"GET", internalReadIndex}, {"GET", internalRaftState}} {
			if code, _ := do(route.method, route.path, tc.header, valid); code != http.StatusUnauthorized {
				t.Errorf("%s token on %s: got %d, want 401", tc.name, route.path, code)
			}
		}
	}

	bad := []struct {
		name, body string
	}{
		{name: "not json", body: "{"},
		{name: "empty", body: ""},
		{name: "unknown mandatory type", body: `{"type":999,"version":1,"payload":{}}`},
		{name: "unknown version", body: `{"type":3,"version":9,"payload":{"key_id":"k"}}`},
		{name: "payload of the wrong shape", body: `{"type":3,"version":1,"payload":"k"}`},
		{name: "missing payload", body: `{"type":3,"version":1}`},
	}
	before := n.raft.LastIndex()
	for _, tc := range bad {
		code, ie := do("POST", internalPropose, "Bearer "+testToken, tc.body)
		if code != http.StatusBadRequest || ie != "bad_command" {
			t.Errorf("%s: got %d %q, want 400 bad_command", tc.name, code, ie)
		}
	}
	if after := n.raft.LastIndex(); after != before {
		t.Fatalf("refused commands reached the log: last index %d, want %d", after, before)
	}
	// Propose refuses them too, rather than stop the zone.
	if _, _, err := n.Propose(context.Background(), fsm.Command{Type: 999, Version: 1, Payload: json.RawMessage(`{}`)}); !errors.Is(err, fsm.ErrInvalidCommand) {
		t.Fatalf("propose unknown type: got %v, want fsm.ErrInvalidCommand", err)
	}
	if code, _ := do("POST", internalPropose, "Bearer "+testToken, valid); code != http.StatusOK {
		t.Fatalf("valid command: got %d, want 200", code)
	}
}

// fakeLeader serves h as a leader's internal API.
func fakeLeader(t *testing.T, h http.HandlerFunc) Member {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return Member{ID: "fake", APIAddress: srv.URL}
}

func bareNode(t *testing.T) *Node {
	t.Helper()
	n := &Node{cfg: Config{InternalToken: testToken, LeaderWait: time.Second}, logger: testLogger(t), http: newHTTPClient(nil)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	t.Cleanup(n.cancel)
	return n
}

// hangUp reads the request, then drops the connection without answering.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// TestForward_MaybeDeliveredIsNotRetried: once a forwarded proposal may
// have reached the leader, only the leader's explicit "not leader" makes
// it safe to send again; anything else is an unknown outcome.
func TestForward_MaybeDeliveredIsNotRetried(t *testing.T) {
	t.Parallel()
	n := bareNode(t)
	data := noteCommand(t, "x")
	cases := []struct {
		name      string
		leader    http.HandlerFunc
		wantRetry bool
	}{
		{name: "connection dropped after the request", leader: hangUp},
		{name: "answer cut short", leader: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"index":`))
			w.(http.Flusher).Flush()
			hangUp(w, r)
		}},
		{name: "leadership lost", leader: func(w http.ResponseWriter, r *http.Request) {
			writeInternal(w, http.StatusServiceUnavailable, internalError{Code: internalCodeLeadershipLost})
		}},
		{name: "explicit not leader", wantRetry: true, leader: func(w http.ResponseWriter, r *http.Request) {
			writeInternal(w, http.StatusConflict, internalError{Code: internalCodeNotLeader})
		}},
	}
	for _, tc := range cases {
		_, _, err := n.forward(context.Background(), fakeLeader(t, tc.leader), data)
		if got := errors.Is(err, errNotLeader); got != tc.wantRetry {
			t.Errorf("%s: got %v (retry %t), want retry %t", tc.name, err, got, tc.wantRetry)
		}
		if !tc.wantRetry && !isOutcomeUnknown(err) {
			t.Errorf("%s: got %v, want an outcome-unknown error", tc.name, err)
		}
	}

	// A leader that is not listening never got it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, _, err := n.forward(context.Background(), Member{ID: "gone", APIAddress: "http://" + addr}, data); !errors.Is(err, errNotLeader) {
		t.Errorf("leader not listening: got %v, want errNotLeader (retry)", err)
	}
}

// TestReadIndex_BrokenConnectionIsRetried: asking for a read index
// changes nothing, so a broken exchange is retried (within LeaderWait)
// rather than reported as a write of unknown outcome.
func TestReadIndex_BrokenConnectionIsRetried(t *testing.T) {
	t.Parallel()
	n := bareNode(t)
	var out readIndexResponse
	err := n.callPeer(context.Background(), fakeLeader(t, hangUp), http.MethodGet, internalReadIndex, nil, &out)
	if !errors.Is(err, errNotLeader) {
		t.Fatalf("got %v, want errNotLeader (retry)", err)
	}
}

// TestPropose_ShutdownWhileCommittingIsNotRetryable: a leader shutting
// down may answer raft.ErrRaftShutdown for entries it has already
// committed. Such an answer must not tell the forwarding node to retry:
// every forwarded proposal answered "retry" must be absent from the log.
func TestPropose_ShutdownWhileCommittingIsNotRetryable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node1")
	n := startNode(t, nodeSpec{id: "node1", dir: dir, expect: 1})
	waitLeader(t, []*Node{n})
	h := n.InternalHandler()

	const workers = 32
	var (
		mu      sync.Mutex
		retried []string // answered "not leader" or "shutdown": the follower would send again
		seq     atomic.Int64
		wg      sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Until Shutdown begins; the proposals in flight then are
			// the interesting ones.
			for n.ctx.Err() == nil {
				tag := fmt.Sprintf("p%d", seq.Add(1))
				req := httptest.NewRequest("POST", internalPropose, bytes.NewReader(noteCommand(t, tag)))
				req.Header.Set("Authorization", "Bearer "+testToken)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				var ie internalError
				_ = json.Unmarshal(rec.Body.Bytes(), &ie)
				if ie.Code == internalCodeNotLeader || ie.Code == internalCodeShutdown {
					mu.Lock()
					retried = append(retried, tag)
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "some proposals", func() bool { return seq.Load() > 200 })
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	inLog := logTags(t, filepath.Join(dir, "raft", "raft.db"))
	var twice []string
	for _, tag := range retried {
		if inLog[tag] {
			twice = append(twice, tag)
		}
	}
	if len(twice) > 0 {
		t.Fatalf("%d of %d proposals answered \"retry\" are in the log (a retry would apply them twice): %v",
			len(twice), len(retried), twice)
	}
	t.Logf("%d proposals, %d answered retry, %d entries in the log", seq.Load(), len(retried), len(inLog))
}

// logTags returns the tags of the note commands in a Raft log.
func logTags(t *testing.T, path string) map[string]bool {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	tags := map[string]bool{}
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil || l.Type != raft.LogCommand {
			continue
		}
		cmd, err := fsm.DecodeCommand(l.Data)
		if err != nil {
			continue
		}
		var p map[string]string
		if json.Unmarshal(cmd.Payload, &p) == nil && p["tag"] != "" {
			tags[p["tag"]] = true
		}
	}
	return tags
}

// TestApplyGate_QueuedAtShutdownNeverReachesRaft: proposals waiting in
// the gate behind a batch when the node begins to shut down are answered
// ErrShutdown (the forwarding node retries them elsewhere), so the batch
// runner, once the batch ahead is answered, must not hand them to raft.
func TestApplyGate_QueuedAtShutdownNeverReachesRaft(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node1")
	n := startNode(t, nodeSpec{id: "node1", dir: dir, expect: 1})
	waitLeader(t, []*Node{n})

	// A batch is in raft's hands: what comes next queues.
	g := &n.gate
	g.mu.Lock()
	g.inFlight = true
	g.mu.Unlock()
	const proposers = 8
	errs := make(chan error, proposers)
	for i := 0; i < proposers; i++ {
		data := noteCommand(t, fmt.Sprintf("queued%d", i))
		go func() {
			_, _, err := n.applyLocal(data)
			errs <- err
		}()
	}
	waitFor(t, 5*time.Second, "queued proposals", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue) == proposers
	})

	// Shutdown's first step; raft itself still runs.
	n.cancel()
	for i := 0; i < proposers; i++ {
		if err := <-errs; !errors.Is(err, ErrShutdown) || isOutcomeUnknown(err) {
			t.Errorf("queued proposal at shutdown: got %v, want ErrShutdown", err)
		}
	}
	// The batch ahead is answered: the runner takes what queued.
	g.mu.Lock()
	queued := g.queue
	g.queue = nil
	g.mu.Unlock()
	n.runApplyBatches(queued)
	if err := n.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if tags := logTags(t, filepath.Join(dir, "raft", "raft.db")); len(tags) > 0 {
		t.Fatalf("proposals answered ErrShutdown reached the log: %v", tags)
	}
}
