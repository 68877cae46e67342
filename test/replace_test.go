package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// writeKeys creates n keys through node like createKeys, but tries again
// a create whose outcome a leader change made unknown: these tests check
// membership, not elections, which a loaded machine may cause at any time
// with test timeouts. A retried create may leave one more key.
func writeKeys(t *testing.T, ctx context.Context, node *clustertest.Node, n int) []string {
	t.Helper()
	org := testOrg(t, node)
	var ids []string
	for i := 0; i < n; i++ {
		for attempt := 1; ; attempt++ {
			k, err := node.Server().Keys().CreateKey(ctx, keys.CreateParams{Organization: org, Name: "replace"})
			if err == nil {
				ids = append(ids, k.ID)
				break
			}
			if !transient(err) || attempt == 5 {
				t.Fatalf("create key %d on %s (attempt %d): %v", i, node.ID, attempt, err)
			}
			t.Logf("create key %d on %s: %v; trying again", i, node.ID, err)
		}
	}
	return ids
}

// transient reports errors after which the zone changed leaders.
func transient(err error) bool {
	return errors.Is(err, cluster.ErrLeadershipLost) || errors.Is(err, cluster.ErrNoLeader) ||
		errors.Is(err, cluster.ErrTimeout) || errors.Is(err, cluster.ErrTransferFailed)
}

// removePeer removes id through node, asking again after a leader change
// (a removal asked again succeeds).
func removePeer(t *testing.T, ctx context.Context, node *clustertest.Node, id string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := node.Server().Node().RemovePeer(ctx, id)
		if err == nil {
			return
		}
		if errors.Is(err, cluster.ErrRemoveLeader) && attempt < 5 {
			// An election made it the leader since the test chose it.
			t.Logf("remove %s: it leads now; transferring leadership first", id)
			if err := node.Server().Node().TransferLeadership(ctx, ""); err != nil && !transient(err) {
				t.Fatalf("transfer leadership away from %s: %v", id, err)
			}
			continue
		}
		if !transient(err) || attempt == 5 {
			t.Fatalf("remove %s through %s (attempt %d): %v", id, node.ID, attempt, err)
		}
		t.Logf("remove %s through %s: %v; trying again", id, node.ID, err)
	}
}

// transferTo moves leadership to target, asked of node, and waits until
// target leads; it asks again when raft gave up on a transfer or an
// election took leadership elsewhere.
func transferTo(t *testing.T, ctx context.Context, c *clustertest.Cluster, node, target *clustertest.Node) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := node.Server().Node().TransferLeadership(ctx, target.ID)
		if err != nil && (!transient(err) || attempt == 5) {
			t.Fatalf("transfer leadership to %s through %s (attempt %d): %v", target.ID, node.ID, attempt, err)
		}
		if c.Leader() == target {
			return
		}
		if attempt == 5 {
			t.Fatalf("%s does not lead after %d transfers", target.ID, attempt)
		}
		t.Logf("transfer leadership to %s: %v; trying again", target.ID, err)
	}
}

// othersThan returns the nodes but leader: unlike c.Followers, which looks
// the leader up again, it stays consistent with the leader the test holds.
func othersThan(c *clustertest.Cluster, leader *clustertest.Node) []*clustertest.Node {
	var out []*clustertest.Node
	for _, n := range c.Nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// sealed is a ciphertext and the plaintext it must open to.
type sealed struct {
	keyID      string
	plaintext  []byte
	ciphertext []byte
}

// encryptAll encrypts one message under each key through node's API.
func encryptAll(t *testing.T, ctx context.Context, c *clustertest.Cluster, node *clustertest.Node, ids []string) []sealed {
	t.Helper()
	cl := nodeClient(t, c, node)
	var out []sealed
	for _, id := range ids {
		pt := []byte("message under " + id)
		res, err := cl.Encrypt(ctx, id, wire.EncryptRequest{Plaintext: pt})
		if err != nil {
			t.Fatalf("encrypt under %s through %s: %v", id, node.ID, err)
		}
		out = append(out, sealed{keyID: id, plaintext: pt, ciphertext: res.Ciphertext})
	}
	return out
}

// requireDecrypts opens every ciphertext through node's API.
func requireDecrypts(t *testing.T, ctx context.Context, c *clustertest.Cluster, node *clustertest.Node, all []sealed) {
	t.Helper()
	cl := nodeClient(t, c, node)
	for _, s := range all {
		res, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: s.ciphertext})
		if err != nil {
			t.Fatalf("decrypt a ciphertext of %s through %s: %v", s.keyID, node.ID, err)
		}
		if res.KeyID != s.keyID || !bytes.Equal(res.Plaintext, s.plaintext) {
			t.Fatalf("decrypt through %s: got key %s plaintext %q, want key %s plaintext %q",
				node.ID, res.KeyID, res.Plaintext, s.keyID, s.plaintext)
		}
	}
}

func nodeClient(t *testing.T, c *clustertest.Cluster, node *clustertest.Node) *client.Client {
	t.Helper()
	cl, err := client.New(node.Addr(), c.Token)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// operatorClient is a client of node with the operator's token, for the
// cluster routes.
func operatorClient(t *testing.T, c *clustertest.Cluster, node *clustertest.Node) *client.Client {
	t.Helper()
	cl, err := client.New(node.Addr(), c.OperatorToken)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitRefused waits until node reports, in its health, that it was
// removed from the zone, failing at once if the leader makes it a voter
// meanwhile.
func waitRefused(t *testing.T, ctx context.Context, c *clustertest.Cluster, node *clustertest.Node) {
	t.Helper()
	want := fmt.Sprintf("node %s was removed from %s at ", node.ID, c.Zone())
	clustertest.WaitFor(t, 15*time.Second, node.ID+" to report its removal", func() bool {
		if raftVoters(t, c.Leader().Server().Node())[node.ID] {
			t.Fatalf("the leader made the removed node %s a voter again", node.ID)
		}
		h := node.Server().Node().Health(ctx)
		return !h.Ready && strings.HasPrefix(h.Reason, want)
	})
	h := node.Server().Node().Health(ctx)
	if !h.Live || !strings.Contains(h.Reason, "new node id") {
		t.Errorf("health of the removed node: %+v, want live with a reason naming the fix", h)
	}
	if _, ok := node.Server().Node().Removed(); !ok {
		t.Error("Removed() = false on a node that reports its removal")
	}
	// The operator sees the same through the API.
	got, err := nodeClient(t, c, node).Health(ctx)
	if err != nil {
		t.Fatalf("GET /v1/health on %s: %v", node.ID, err)
	}
	if got.Ready || !strings.HasPrefix(got.Reason, want) {
		t.Errorf("GET /v1/health on %s: %+v, want not ready because removed", node.ID, got)
	}
}

// requireVoters checks the leader's configuration after a write, so that
// the leader's reconcile loop has had rounds to add back what it wrongly
// would.
func requireVoters(t *testing.T, ctx context.Context, c *clustertest.Cluster, want ...*clustertest.Node) {
	t.Helper()
	leader := c.Leader()
	writeKeys(t, ctx, leader, 2)
	got := raftVoters(t, leader.Server().Node())
	if len(got) != len(want) {
		t.Fatalf("voters: got %v, want %d", got, len(want))
	}
	for _, n := range want {
		if !got[n.ID] {
			t.Fatalf("voters: got %v, want %s among them", got, n.ID)
		}
	}
}

// TestReplace_NodeReplacement walks through replacing a node: a stopped
// follower is removed and the zone keeps serving with two; a wiped node
// under a new id joins as a voter once the log it would need is compacted
// away, so it catches up through a snapshot, then serves every key and
// opens ciphertexts made before it joined; after a leader change, the
// removed id restarted with its old data is refused, and so is a wiped
// node that reuses the removed id. Neither becomes a voter; both say why.
func TestReplace_NodeReplacement(t *testing.T) {
	t.Parallel()
	const trailing = 4
	c := clustertest.New(t, 3, clustertest.Options{SnapshotThreshold: 8, TrailingLogs: trailing})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader := c.Leader()
	ids := writeKeys(t, ctx, leader, 3)
	msgs := encryptAll(t, ctx, c, leader, ids)

	// Remove a stopped follower, asked of the other one (forwarded).
	followers := othersThan(c, leader)
	gone, stay := followers[0], followers[1]
	c.Stop(gone)
	removePeer(t, ctx, stay, gone.ID)
	requireVoters(t, ctx, c, leader, stay)
	for _, n := range []*clustertest.Node{leader, stay} {
		if r, ok := n.Server().FSM().RemovedNode(gone.ID); !ok || r.Zone != c.Zone() || r.RemovedAt == 0 {
			t.Fatalf("removal record on %s: %+v, %v", n.ID, r, ok)
		}
	}
	// A removal asked again succeeds and changes nothing.
	removePeer(t, ctx, leader, gone.ID)

	// The zone serves with two voters, well past a snapshot: the log from
	// index 1, where the removal record sits, is compacted away.
	more := writeKeys(t, ctx, stay, 40)
	ids = append(ids, more...)
	msgs = append(msgs, encryptAll(t, ctx, c, stay, more[:5])...)
	clustertest.WaitFor(t, 20*time.Second, "a leader snapshot that compacts the start of the log", func() bool {
		return raftStat(t, leader.Server().Node(), "last_snapshot_index") > trailing+1
	})

	// A wiped node under a new id: added by the leader as a voter, sent
	// the snapshot (the entries it lacks are gone), then up to date.
	repl := c.AddNode(clustertest.WithNodeID(c.Zone() + "-replacement"))
	clustertest.WaitFor(t, 20*time.Second, "the replacement to become a voter", func() bool {
		return raftVoters(t, c.Leader().Server().Node())[repl.ID]
	})
	requireKeys(t, ctx, repl, ids)
	if _, ok := repl.Server().FSM().RemovedNode(gone.ID); !ok {
		t.Error("the replacement's state lacks the removal, which only the snapshot could bring")
	}
	requireDecrypts(t, ctx, c, repl, msgs)
	c.WaitReady(10 * time.Second)

	// A leader change, to a node that never led while the removal
	// happened, then the removed node back with its old data.
	transferTo(t, ctx, c, stay, repl)
	c.Restart(gone)
	waitRefused(t, ctx, c, gone)
	requireVoters(t, ctx, c, leader, stay, repl)

	// A wiped node reusing the removed id (same addresses, empty disk).
	c.Stop(gone)
	c.Wipe(gone)
	c.Restart(gone)
	waitRefused(t, ctx, c, gone)
	requireVoters(t, ctx, c, leader, stay, repl)
	if n := gone.Server().FSM().KeyCount(); n != 0 {
		t.Errorf("the refused wiped node holds %d keys, want none", n)
	}

	// The zone serves through every voter, and every voter has it all.
	for _, n := range []*clustertest.Node{leader, stay, repl} {
		ids = append(ids, writeKeys(t, ctx, n, 1)...)
	}
	for _, n := range []*clustertest.Node{leader, stay, repl} {
		requireKeys(t, ctx, n, ids)
	}
	ps, err := operatorClient(t, c, stay).Peers(ctx)
	if err != nil || len(ps.Peers) != 3 {
		t.Fatalf("peers: got %+v, %v", ps, err)
	}
	for _, p := range ps.Peers {
		if p.ID == gone.ID || p.State == "unreachable" {
			t.Errorf("peers: %+v", p)
		}
	}
}

// TestReplace_RemoveRunningNode: a follower removed while it runs learns
// of its removal, says why, and stops taking part; after a leader change
// the new leader, which sees it in the pool, does not add it back.
func TestReplace_RemoveRunningNode(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := c.Leader()
	ids := writeKeys(t, ctx, leader, 2)
	followers := othersThan(c, leader)
	victim, other := followers[0], followers[1]

	removePeer(t, ctx, leader, victim.ID)
	waitRefused(t, ctx, c, victim)
	// Its API no longer serves keys from its stale state.
	vc, err := client.New(victim.Addr(), c.Token)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vc.Encrypt(ctx, ids[0], wire.EncryptRequest{Plaintext: []byte("x")})
	wantAPIError(t, err, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(err.Error(), "removed from its zone") {
		t.Fatalf("encrypt on a removed node: %v, want it to say the node was removed", err)
	}

	transferTo(t, ctx, c, leader, other)
	clustertest.WaitFor(t, 10*time.Second, "the new leader to see the removed node in the pool", func() bool {
		for _, m := range other.Server().Node().Members() {
			if m.ID == victim.ID {
				return true
			}
		}
		return false
	})
	requireVoters(t, ctx, c, leader, other)
	ids = append(ids, writeKeys(t, ctx, leader, 2)...)
	for _, n := range []*clustertest.Node{leader, other} {
		requireKeys(t, ctx, n, ids)
	}
}

// TestReplace_DevProcedure replaces a node of `keyzone dev` as
// docs/operations.md tells an operator to: the real binary's dev zone in
// one process, writing the root key file and gossip addresses with its env
// file; remove-peer of a follower, which then reports its removal; a
// separate `keyzone server` under a new id joining the zone from the env
// file alone; it shows in peers, opens a ciphertext made before it joined
// and takes leadership.
func TestReplace_DevProcedure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildKeyzone(t)
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "keyzone")); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, bin, dir, "--zones", "1")

	keyFile := dev.get("KEYZONE_ROOT_KEY_FILE")
	if keyFile != dev.envFile+".root-key" {
		t.Fatalf("KEYZONE_ROOT_KEY_FILE = %q, want %q beside the env file", keyFile, dev.envFile+".root-key")
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v, %v; want mode 0600", st, err)
	}
	join := strings.Split(dev.get("KEYZONE_JOIN_ZONE_A"), ",")
	if len(join) != 3 {
		t.Fatalf("KEYZONE_JOIN_ZONE_A = %q, want three gossip addresses", dev.get("KEYZONE_JOIN_ZONE_A"))
	}

	// A follower that KEYZONE_ADDR does not point at.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := client.New(dev.get("KEYZONE_ADDR"), dev.get("KEYZONE_OPERATOR_TOKEN"))
	if err != nil {
		t.Fatal(err)
	}
	peers, err := cl.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gone wire.Peer
	for _, p := range peers.Peers {
		if p.State == "follower" && p.APIAddress != dev.get("KEYZONE_ADDR") {
			gone = p
		}
	}
	if gone.ID == "" {
		t.Fatalf("no follower to remove among %+v", peers.Peers)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	pidFile := filepath.Join(dir, "a4.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	// The user's shell: the binary on PATH, no KEYZONE_* of ours.
	env := []string{"PATH=" + filepath.Join(dir, "bin") + ":" + os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYZONE_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	lines := []string{
		"set -a; . .dev/env; set +a",
		"KEY=$(keyzone key create --name before-replace -q)",
		`echo -n "written before the replacement" | keyzone encrypt $KEY > before.ct`,
		"keyzone cluster remove-peer " + gone.ID,
		"keyzone cluster peers",
		// Told by the leader, it knows at once; under load the notice
		// may time out, and it finds out within seconds by itself.
		"until ! keyzone health --addr " + gone.APIAddress + "; do sleep 0.2; done",
		// The env file gives the operator token and the home zone.
		`keyzone server --node-id a4 --zone zone-a --data-dir .dev/a4 ` +
			"--api-addr " + apiAddr + " --raft-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 --gossip-profile local " +
			`--join "$KEYZONE_JOIN_ZONE_A" --bootstrap-expect 0 > .dev/a4.log 2>&1 &`,
		"echo $! > a4.pid",
		"until keyzone health --addr http://" + apiAddr + "; do sleep 0.2; done",
		"keyzone cluster peers",
		"KEYZONE_ADDR=http://" + apiAddr + " keyzone decrypt < before.ct",
		"keyzone cluster transfer-leadership a4",
		"KEYZONE_ADDR=http://" + apiAddr + " keyzone cluster peers",
	}
	outs := runScript(t, dir, env, lines)
	for i, l := range lines {
		t.Logf("$ %s\n%s", l, outs[i])
	}
	if !strings.Contains(outs[5], "node "+gone.ID+" was removed from zone-a at ") {
		t.Errorf("health of the removed node: %q", outs[5])
	}
	if strings.Contains(outs[4], gone.ID+" ") || strings.Contains(outs[9], gone.ID+" ") {
		t.Errorf("the removed node is still listed:\n%s\n%s", outs[4], outs[9])
	}
	if !regexp.MustCompile(`(?m)^a4 .* follower `).MatchString(outs[9]) {
		t.Errorf("peers does not list a4 as a follower:\n%s", outs[9])
	}
	if got := strings.TrimSpace(outs[10]); got != "written before the replacement" {
		t.Errorf("decrypt through a4: %q", got)
	}
	if !regexp.MustCompile(`(?m)^a4 .* leader `).MatchString(outs[12]) {
		t.Errorf("a4 does not lead after the transfer:\n%s", outs[12])
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		t.Errorf("stop a4: %v", err)
	}
	dev.interrupt()
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("root key file left behind after dev stopped: %v", err)
	}
}
