package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
	"github.com/keyzone/keyzone/test/clustertest"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestZone_KillLeaderUnderWrites creates keys from several writers
// through every node while the leader is stopped, and checks that every
// create that was acknowledged is present on every node afterwards.
func TestZone_KillLeaderUnderWrites(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 90*time.Second)
	org := c.Org.ID

	var (
		mu    sync.Mutex
		acked []string
		fails int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := c.Nodes[(w+i)%len(c.Nodes)]
				srv := n.Server()
				if srv == nil {
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				k, err := srv.Keys().CreateKey(cctx, keys.CreateParams{Organization: org, Name: "stream"})
				cancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, k.ID)
				} else {
					fails++
				}
				mu.Unlock()
			}
		}()
	}
	waitAcked := func(n int) {
		clustertest.WaitFor(t, 30*time.Second, "acknowledged creates", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= n
		})
	}
	waitAcked(20)
	old := c.Leader()
	t.Logf("stopping leader %s", old.ID)
	c.Stop(old)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitAcked(before + 20)
	// The old leader comes back from its data dir and catches up while
	// the writes go on.
	c.Restart(old)
	mu.Lock()
	before = len(acked)
	mu.Unlock()
	waitAcked(before + 20)
	close(stop)
	wg.Wait()
	t.Logf("acknowledged %d creates, %d failed or unknown", len(acked), fails)

	c.WaitReady(30 * time.Second)
	for _, n := range c.Nodes {
		srv := n.Server()
		if err := srv.Node().ConsistentRead(ctx); err != nil {
			t.Fatalf("consistent read on %s: %v", n.ID, err)
		}
		for _, id := range acked {
			if _, ok := srv.FSM().Key(id); !ok {
				t.Fatalf("node %s lost acknowledged key %s", n.ID, id)
			}
		}
	}
}

// TestZone_RestartAllKeepsKeys stops every node and starts them again
// from their data dirs, with snapshots and log truncation happening on
// the way, and finds every key and decrypts every ciphertext.
func TestZone_RestartAllKeepsKeys(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{SnapshotThreshold: 16, TrailingLogs: 4})
	ctx := testCtx(t, 90*time.Second)
	org := c.Org.ID
	svc := c.Nodes[0].Server().Keys()
	type sealed struct {
		plaintext  []byte
		ciphertext []byte
	}
	var cts []sealed
	var ids []string
	for i := 0; i < 40; i++ {
		k, err := svc.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "restart"})
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		ids = append(ids, k.ID)
		if i%4 == 0 {
			if _, err := svc.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}}); err != nil {
				t.Fatalf("rotate: %v", err)
			}
		}
		pt := []byte("secret-" + k.ID)
		enc, err := svc.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: pt})
		if err != nil {
			t.Fatalf("encrypt: %v", err)
		}
		cts = append(cts, sealed{pt, enc.Ciphertext})
	}
	// The thresholds are tiny: every node must have taken a snapshot.
	clustertest.WaitFor(t, 20*time.Second, "a snapshot on every node", func() bool {
		for _, n := range c.Nodes {
			m, _ := filepath.Glob(filepath.Join(n.Dir, "raft", "snapshots", "*", "state.bin"))
			if len(m) == 0 {
				return false
			}
		}
		return true
	})
	c.Shutdown()
	for _, n := range c.Nodes {
		c.Restart(n)
	}
	c.WaitReady(30 * time.Second)
	for _, n := range c.Nodes {
		srv := n.Server()
		for i, id := range ids {
			k, err := srv.Keys().GetKey(ctx, org, id, false)
			if err != nil {
				t.Fatalf("%s: get %s after restart: %v", n.ID, id, err)
			}
			if want := uint32(1); i%4 == 0 {
				want = 2
				if k.CurrentVersion != want {
					t.Fatalf("%s: key %s version %d, want %d", n.ID, id, k.CurrentVersion, want)
				}
			}
			dec, err := srv.Keys().Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: cts[i].ciphertext})
			if err != nil {
				t.Fatalf("%s: decrypt after restart: %v", n.ID, err)
			}
			if !bytes.Equal(dec.Plaintext, cts[i].plaintext) {
				t.Fatalf("%s: got %q, want %q", n.ID, dec.Plaintext, cts[i].plaintext)
			}
		}
	}
}

// TestZone_NoPlaintextMaterialAtRest scans every file of every data dir
// (BoltDB log, snapshots) for the raw bytes of known version material, in
// binary, base64 and hex (the organization's default key's too), and for
// the token secrets, and finds none.
func TestZone_NoPlaintextMaterialAtRest(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{SnapshotThreshold: 8, TrailingLogs: 2})
	ctx := testCtx(t, 60*time.Second)
	org := c.Org.ID
	svc := c.Leader().Server().Keys()
	var needles [][]byte
	for i := 0; i < 20; i++ {
		k, err := svc.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "at-rest"})
		if err != nil {
			t.Fatal(err)
		}
		k, err = svc.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}})
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := kzcrypto.ParseKeyID(k.ID)
		for _, v := range k.Versions {
			m, err := c.REK.Unwrap(kid, v.Number, v.Wrapped)
			if err != nil {
				t.Fatalf("unwrap: %v", err)
			}
			needles = append(needles, m, []byte(base64.StdEncoding.EncodeToString(m)), []byte(hex.EncodeToString(m)))
		}
	}
	// The organization's default key, and the token secrets: the state
	// holds only their SHA-256.
	def, ok := c.Leader().Server().FSM().Key(c.Org.DefaultKeyID)
	if !ok {
		t.Fatalf("no default key %s", c.Org.DefaultKeyID)
	}
	for _, v := range def.Versions {
		kid, _ := kzcrypto.ParseKeyID(def.ID)
		m, err := c.REK.Unwrap(kid, v.Number, v.Wrapped)
		if err != nil {
			t.Fatalf("unwrap the default key: %v", err)
		}
		needles = append(needles, m, []byte(base64.StdEncoding.EncodeToString(m)), []byte(hex.EncodeToString(m)))
	}
	for _, secret := range []string{c.Token, c.OperatorToken} {
		needles = append(needles, []byte(secret))
		_, rnd, _ := strings.Cut(strings.TrimPrefix(secret, "kzt_"), "_")
		if rnd != "" {
			needles = append(needles, []byte(rnd))
		}
	}
	clustertest.WaitFor(t, 20*time.Second, "a snapshot on every node", func() bool {
		for _, n := range c.Nodes {
			m, _ := filepath.Glob(filepath.Join(n.Dir, "raft", "snapshots", "*", "state.bin"))
			if len(m) == 0 {
				return false
			}
		}
		return true
	})
	c.Shutdown() // flush everything to disk
	scanned := 0
	for _, n := range c.Nodes {
		err := filepath.WalkDir(n.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			scanned++
			for _, needle := range needles {
				if bytes.Contains(b, needle) {
					t.Errorf("%s holds plaintext version material or a token secret", path)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if scanned < 6 {
		t.Fatalf("scanned only %d files; the data dirs are not where the test looks", scanned)
	}
}

// TestZone_RefusesOtherRootKey restarts a node with a different REK: it
// must refuse to start and say why.
func TestZone_RefusesOtherRootKey(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	n := c.Nodes[2]
	c.Stop(n)
	other, err := kzcrypto.NewREK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.ServerConfig(n)
	cfg.Keys.REK = other
	_, err = server.Start(cfg)
	if !errors.Is(err, cluster.ErrRootKeyMismatch) {
		t.Fatalf("got %v, want ErrRootKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), "different root key") {
		t.Fatalf("error %q does not say what is wrong", err)
	}
}
