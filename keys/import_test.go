package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

func seal(t *testing.T, p keys.ImportParameters, m []byte) []byte {
	t.Helper()
	pk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(p.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	out, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), p.Info, m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestService_Import_TokenRace sends one sealed material with one token
// through every node of a zone at once: Apply lets exactly one import.
func TestService_Import_TokenRace(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	k := mustCreate(t, ctx, svc(c, 0), keys.CreateParams{Name: "race", Origin: fsm.OriginExternal})
	ref := keys.KeyRef{Organization: org, KeyID: k.ID}
	p, err := svc(c, 1).ImportParameters(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	sealed := seal(t, p, bytes.Repeat([]byte{9}, 32))
	var wg sync.WaitGroup
	errs := make([]error, 2*len(c.Nodes))
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = svc(c, i%len(c.Nodes)).ImportKeyMaterial(ctx, keys.ImportMaterialParams{KeyRef: ref, ImportToken: p.ImportToken, Sealed: sealed})
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, fsm.ErrImportTokenUsed):
			t.Errorf("import %d: %v, want success or ErrImportTokenUsed", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d imports succeeded with one token, want 1", ok)
	}
	got, err := svc(c, 2).GetKey(ctx, org, k.ID, false)
	if err != nil || len(got.Versions) != 1 || got.State != fsm.KeyStateEnabled {
		t.Fatalf("key after the race: %+v, %v", got, err)
	}
}

// TestService_Import_Refusals covers what the service refuses before
// proposing anything.
func TestService_Import_Refusals(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	s := svc(c, 0)
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "ext", Origin: fsm.OriginExternal})
	ref := keys.KeyRef{Organization: org, KeyID: k.ID}
	p, err := s.ImportParameters(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	m := bytes.Repeat([]byte{1}, 32)
	for _, tc := range []struct {
		name string
		p    keys.ImportMaterialParams
		want error
	}{
		{"nothing", keys.ImportMaterialParams{KeyRef: ref}, keys.ErrInvalidArgument},
		{"sealed and raw", keys.ImportMaterialParams{KeyRef: ref, ImportToken: p.ImportToken, Sealed: seal(t, p, m), Raw: m, OverTLS: true}, keys.ErrInvalidArgument},
		{"sealed without token", keys.ImportMaterialParams{KeyRef: ref, Sealed: seal(t, p, m)}, keys.ErrInvalidArgument},
		{"malformed token", keys.ImportMaterialParams{KeyRef: ref, ImportToken: "kzimp_nope", Sealed: seal(t, p, m)}, fsm.ErrImportTokenInvalid},
		{"token with a changed secret", keys.ImportMaterialParams{KeyRef: ref, ImportToken: changeChar(p.ImportToken, len(p.ImportToken)-5), Sealed: seal(t, p, m)}, fsm.ErrImportTokenInvalid},
		{"garbage sealed", keys.ImportMaterialParams{KeyRef: ref, ImportToken: p.ImportToken, Sealed: []byte("garbage")}, keys.ErrImportUnseal},
		{"raw, not allowed", keys.ImportMaterialParams{KeyRef: ref, Raw: m, OverTLS: true}, keys.ErrRawImportRefused},
		{"another organization", keys.ImportMaterialParams{KeyRef: keys.KeyRef{Organization: "other", KeyID: k.ID}, ImportToken: p.ImportToken, Sealed: seal(t, p, m)}, fsm.ErrKeyNotFound},
	} {
		if _, err := s.ImportKeyMaterial(ctx, tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// None of the refusals used the token.
	if _, err := s.ImportKeyMaterial(ctx, keys.ImportMaterialParams{KeyRef: ref, ImportToken: p.ImportToken, Sealed: seal(t, p, m)}); err != nil {
		t.Fatalf("import after the refusals: %v", err)
	}
}

// BenchmarkService_Import measures one import end to end on a one-node
// zone: import parameters (key pair, wrap, one Raft entry), the caller's
// HPKE seal, and the import (unwrap, open, derive, wrap, one Raft entry).
func BenchmarkService_Import(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{})
	ctx := context.Background()
	s := c.Nodes[0].Server().Keys()
	k, err := s.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "bench", Origin: fsm.OriginExternal})
	if err != nil {
		b.Fatal(err)
	}
	ref := keys.KeyRef{Organization: org, KeyID: k.ID}
	m := bytes.Repeat([]byte{3}, 32)
	pk := func(p keys.ImportParameters) hpke.PublicKey {
		pub, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(p.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		return pub
	}
	for b.Loop() {
		p, err := s.ImportParameters(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		sealed, err := hpke.Seal(pk(p), hpke.HKDFSHA256(), hpke.AES256GCM(), p.Info, m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.ImportKeyMaterial(ctx, keys.ImportMaterialParams{KeyRef: ref, ImportToken: p.ImportToken, Sealed: sealed}); err != nil {
			b.Fatal(err)
		}
	}
}
