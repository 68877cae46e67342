package keys_test

import (
	"context"
	"errors"
	"testing"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

const org = fsm.DefaultOrganization

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// svc returns the key service of node i of a zone.
func svc(c *clustertest.Cluster, i int) *keys.Service { return c.Nodes[i].Server().Keys() }

// mustCreate creates a key or fails the test.
func mustCreate(t *testing.T, ctx context.Context, s *keys.Service, p keys.CreateParams) *fsm.Key {
	t.Helper()
	if p.Organization == "" {
		p.Organization = org
	}
	k, err := s.CreateKey(ctx, p)
	if err != nil {
		t.Fatalf("create key %q: %v", p.Name, err)
	}
	return k
}

// mustEncrypt encrypts under a key of org or fails the test.
func mustEncrypt(t *testing.T, ctx context.Context, s *keys.Service, id string, pt []byte, c keys.Context) keys.CryptoResult {
	t.Helper()
	res, err := s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: id, Plaintext: pt, Context: c})
	if err != nil {
		t.Fatalf("encrypt under %s: %v", id, err)
	}
	return res
}

// isDecryptFailure reports whether err is exactly the one generic decrypt
// error: errors.Is and the same text, so nothing about the cause leaks
// through a wrapping message.
func isDecryptFailure(err error) bool {
	return errors.Is(err, kzcrypto.ErrDecrypt) && err.Error() == kzcrypto.ErrDecrypt.Error()
}

// waitApplied waits until every running node of c has applied index.
func waitApplied(t *testing.T, c *clustertest.Cluster, index uint64) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, "every node applied the change", func() bool {
		for _, n := range c.Nodes {
			if n.Server().FSM().AppliedIndex() < index {
				return false
			}
		}
		return true
	})
}
