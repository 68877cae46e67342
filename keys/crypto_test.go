package keys_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

func TestService_DataKeys(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 1, clustertest.Options{})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "dek"})
	ec := keys.Context{Map: map[string]string{"bucket": "b1"}}
	for _, tc := range []struct {
		bits, want int
		without    bool
	}{{0, 32, false}, {128, 16, false}, {256, 32, false}, {128, 16, true}, {256, 32, true}} {
		name := fmt.Sprintf("bits=%d without_plaintext=%v", tc.bits, tc.without)
		dk, err := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID, KeySizeBits: tc.bits, WithoutPlaintext: tc.without, Context: ec})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if dk.KeyID != k.ID || dk.KeyVersion != 1 {
			t.Errorf("%s: made by %s v%d, want %s v1", name, dk.KeyID, dk.KeyVersion, k.ID)
		}
		if tc.without && dk.Plaintext != nil {
			t.Errorf("%s: got a plaintext", name)
		}
		if !tc.without && len(dk.Plaintext) != tc.want {
			t.Errorf("%s: got %d plaintext bytes, want %d", name, len(dk.Plaintext), tc.want)
		}
		dec, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: dk.Ciphertext, Context: ec})
		if err != nil {
			t.Fatalf("%s: decrypt: %v", name, err)
		}
		if len(dec.Plaintext) != tc.want || (!tc.without && !bytes.Equal(dec.Plaintext, dk.Plaintext)) {
			t.Errorf("%s: the ciphertext holds %d bytes (%x), want the %d returned", name, len(dec.Plaintext), dec.Plaintext, tc.want)
		}
		if _, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: dk.Ciphertext}); !isDecryptFailure(err) {
			t.Errorf("%s: decrypt without the context: got %v, want ErrDecrypt", name, err)
		}
	}
	// Two data keys are never the same.
	a, _ := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID})
	b, _ := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID})
	if bytes.Equal(a.Plaintext, b.Plaintext) {
		t.Error("two data keys are equal")
	}
}

func TestService_ReEncrypt(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 1, clustertest.Options{})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	src := mustCreate(t, ctx, s, keys.CreateParams{Name: "src"})
	dst := mustCreate(t, ctx, s, keys.CreateParams{Name: "dst"})
	off := mustCreate(t, ctx, s, keys.CreateParams{Name: "off"})
	if _, err := s.DisableKey(ctx, keys.KeyRef{Organization: org, KeyID: off.ID}); err != nil {
		t.Fatal(err)
	}
	pt := []byte("the quarterly numbers")
	c1 := keys.Context{Map: map[string]string{"purpose": "report", "year": "2025"}}
	c2 := keys.Context{AssociatedData: []byte("archive/2025")}
	enc := mustEncrypt(t, ctx, s, src.ID, pt, c1)

	// To another key, with another context.
	re, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext, Context: c1, DestinationKeyID: dst.ID, DestinationContext: c2})
	if err != nil {
		t.Fatal(err)
	}
	if re.KeyID != dst.ID || re.KeyVersion != 1 || re.Plaintext != nil {
		t.Fatalf("re-encrypt gave %s v%d (plaintext %v), want %s v1 and no plaintext", re.KeyID, re.KeyVersion, re.Plaintext != nil, dst.ID)
	}
	if bytes.Contains(re.Ciphertext, pt) {
		t.Fatal("the new ciphertext contains the plaintext")
	}
	dec, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: re.Ciphertext, Context: c2})
	if err != nil || !bytes.Equal(dec.Plaintext, pt) || dec.KeyID != dst.ID {
		t.Fatalf("decrypt of the new ciphertext: %q from %s, %v", dec.Plaintext, dec.KeyID, err)
	}
	for name, wrong := range map[string]keys.Context{"the source context": c1, "no context": {}, "the map form": {Map: map[string]string{"x": "archive/2025"}}} {
		if _, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: re.Ciphertext, Context: wrong}); !isDecryptFailure(err) {
			t.Errorf("decrypt of the new ciphertext with %s: got %v, want ErrDecrypt", name, err)
		}
	}
	// Named source key: its own is fine, another is a decrypt failure.
	if _, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, KeyID: src.ID, Ciphertext: enc.Ciphertext, Context: c1}); err != nil {
		t.Errorf("re-encrypt naming the source key: %v", err)
	}
	if _, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, KeyID: dst.ID, Ciphertext: enc.Ciphertext, Context: c1}); !isDecryptFailure(err) {
		t.Errorf("re-encrypt naming another key: got %v, want ErrDecrypt", err)
	}
	// The source context is checked.
	if _, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext, Context: c2, DestinationKeyID: dst.ID}); !isDecryptFailure(err) {
		t.Errorf("re-encrypt with the wrong source context: got %v, want ErrDecrypt", err)
	}
	// Destinations that can't encrypt.
	if _, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext, Context: c1, DestinationKeyID: off.ID}); !errors.Is(err, keys.ErrKeyDisabled) {
		t.Errorf("re-encrypt to a disabled key: got %v, want ErrKeyDisabled", err)
	}
	missing := "00000000-0000-4000-8000-000000000000"
	if _, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext, Context: c1, DestinationKeyID: missing}); !errors.Is(err, fsm.ErrKeyNotFound) {
		t.Errorf("re-encrypt to a missing key: got %v, want ErrKeyNotFound", err)
	}
	// A destination the caller names is judged before the ciphertext,
	// like a named source key: the answer is the same for a good
	// ciphertext and a bad one.
	for name, ct := range map[string][]byte{"good": enc.Ciphertext, "garbage": {1, 2, 3}, "tampered": append(bytes.Clone(enc.Ciphertext[:len(enc.Ciphertext)-1]), 0)} {
		_, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: ct, Context: c1, DestinationKeyID: off.ID})
		if !errors.Is(err, keys.ErrKeyDisabled) {
			t.Errorf("%s ciphertext to a disabled destination: got %v, want ErrKeyDisabled", name, err)
		}
		_, err = s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: ct, Context: c1, DestinationKeyID: missing})
		if !errors.Is(err, fsm.ErrKeyNotFound) {
			t.Errorf("%s ciphertext to a missing destination: got %v, want ErrKeyNotFound", name, err)
		}
	}
	// Default destination: the source key's newest version.
	for range 2 {
		if _, err := s.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: src.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	up, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext, Context: c1, DestinationContext: c1})
	if err != nil {
		t.Fatal(err)
	}
	if up.KeyID != src.ID || up.KeyVersion != 3 {
		t.Fatalf("re-encrypt of a version 1 ciphertext gave %s v%d, want %s v3", up.KeyID, up.KeyVersion, src.ID)
	}
}

// TestService_DecryptNamedKey: when the caller names a key, that key is
// checked first, whatever the ciphertext: a key that does not exist (in
// the caller's organization) is "not found", a key that is not enabled
// is "disabled"; only then is every problem of the ciphertext the one
// ErrDecrypt. Before the fix, a disabled or missing named key gave
// ErrDecrypt or not, depending on which part of the ciphertext was
// wrong, and another organization's key gave ErrDecrypt when the
// ciphertext named it but "not found" otherwise.
func TestService_DecryptNamedKey(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 1, clustertest.Options{})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	a := mustCreate(t, ctx, s, keys.CreateParams{Name: "a"})
	b := mustCreate(t, ctx, s, keys.CreateParams{Name: "b"})
	d := mustCreate(t, ctx, s, keys.CreateParams{Name: "d"})
	foreign := mustCreate(t, ctx, s, keys.CreateParams{Organization: "other-org", Name: "theirs"})
	pt := []byte("named")
	ctA := mustEncrypt(t, ctx, s, a.ID, pt, keys.Context{}).Ciphertext
	ctB := mustEncrypt(t, ctx, s, b.ID, pt, keys.Context{}).Ciphertext
	ctD := mustEncrypt(t, ctx, s, d.ID, pt, keys.Context{}).Ciphertext
	ctF, err := s.Encrypt(ctx, keys.EncryptParams{Organization: "other-org", KeyID: foreign.ID, Plaintext: pt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DisableKey(ctx, keys.KeyRef{Organization: org, KeyID: d.ID}); err != nil {
		t.Fatal(err)
	}
	flip := func(ct []byte, i int) []byte {
		out := bytes.Clone(ct)
		out[i] ^= 0x01
		return out
	}
	missing := "00000000-0000-4000-8000-000000000000"
	garbage := [][]byte{nil, {1}, bytes.Repeat([]byte{1}, kzcrypto.HeaderSize+16)}
	type want int
	const (
		ok want = iota
		decryptFailed
		notFound
		disabled
	)
	type tc struct {
		named string
		ct    []byte
		want  want
	}
	cases := map[string]tc{
		"own key":                         {a.ID, ctA, ok},
		"no key named":                    {"", ctA, ok},
		"another enabled key":             {b.ID, ctA, decryptFailed},
		"own key, tampered tag":           {a.ID, flip(ctA, len(ctA)-1), decryptFailed},
		"own key, tampered key id":        {a.ID, flip(ctA, 5), decryptFailed},
		"own key, unknown version":        {a.ID, flip(ctA, 20), decryptFailed},
		"missing key":                     {missing, ctA, notFound},
		"missing key, its own-looking ct": {missing, withKeyID(ctA, missing), notFound},
		"disabled key, its ciphertext":    {d.ID, ctD, disabled},
		"disabled key, tampered tag":      {d.ID, flip(ctD, len(ctD)-1), disabled},
		"disabled key, unknown version":   {d.ID, flip(ctD, 20), disabled},
		"disabled key, other ciphertext":  {d.ID, ctB, disabled},
		"no key named, disabled key's ct": {"", ctD, disabled},
		"another org's key, its ct":       {foreign.ID, ctF.Ciphertext, notFound},
		"another org's key, other ct":     {foreign.ID, ctA, notFound},
		"no key named, other org's ct":    {"", ctF.Ciphertext, decryptFailed},
	}
	for i, g := range garbage {
		cases[fmt.Sprintf("own key, garbage %d", i)] = tc{a.ID, g, decryptFailed}
		cases[fmt.Sprintf("no key named, garbage %d", i)] = tc{"", g, decryptFailed}
		cases[fmt.Sprintf("missing key, garbage %d", i)] = tc{missing, g, notFound}
		cases[fmt.Sprintf("disabled key, garbage %d", i)] = tc{d.ID, g, disabled}
		cases[fmt.Sprintf("another org's key, garbage %d", i)] = tc{foreign.ID, g, notFound}
	}
	for name, tc := range cases {
		_, derr := s.Decrypt(ctx, keys.DecryptParams{Organization: org, KeyID: tc.named, Ciphertext: tc.ct})
		_, rerr := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, KeyID: tc.named, Ciphertext: tc.ct, DestinationKeyID: b.ID})
		for op, err := range map[string]error{"decrypt": derr, "re-encrypt": rerr} {
			var good bool
			switch tc.want {
			case ok:
				good = err == nil
			case decryptFailed:
				good = isDecryptFailure(err)
			case notFound:
				good = errors.Is(err, fsm.ErrKeyNotFound) && !errors.Is(err, kzcrypto.ErrDecrypt)
			case disabled:
				good = errors.Is(err, keys.ErrKeyDisabled) && !errors.Is(err, kzcrypto.ErrDecrypt)
			}
			if !good {
				t.Errorf("%s: %s: got %v, want %s", name, op, err, []string{"success", "ErrDecrypt", "ErrKeyNotFound", "ErrKeyDisabled"}[tc.want])
			}
		}
	}
}

// withKeyID returns ct with its header's key id replaced.
func withKeyID(ct []byte, id string) []byte {
	kid, err := kzcrypto.ParseKeyID(id)
	if err != nil {
		panic(err)
	}
	out := bytes.Clone(ct)
	copy(out[1:1+kzcrypto.KeyIDSize], kid[:])
	return out
}

// TestService_CiphertextTampering flips every byte of a ciphertext, cuts
// it at every length and swaps its version: each is the same ErrDecrypt,
// with or without the key named.
func TestService_CiphertextTampering(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 1, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	s := svc(c, 0)
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "tamper"})
	ec := keys.Context{Map: map[string]string{"a": "1"}}
	v1 := mustEncrypt(t, ctx, s, k.ID, []byte("sixteen byte msg"), ec).Ciphertext
	if _, err := s.RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}}); err != nil {
		t.Fatal(err)
	}
	var bad [][]byte
	for i := range v1 {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(v1)
			b[i] ^= bit
			bad = append(bad, b)
		}
	}
	for n := 0; n < len(v1); n++ {
		bad = append(bad, v1[:n])
	}
	swapped := bytes.Clone(v1)
	swapped[1+kzcrypto.KeyIDSize+3] = 2 // version 1 -> 2, which exists
	bad = append(bad, swapped, append(bytes.Clone(v1), 0))
	for i, ct := range bad {
		for _, named := range []string{"", k.ID} {
			_, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, KeyID: named, Ciphertext: ct, Context: ec})
			if !isDecryptFailure(err) {
				t.Errorf("tampered ciphertext %d (named %q): got %v, want exactly ErrDecrypt", i, named, err)
			}
		}
	}
	// The untouched one still decrypts (so the failures above are the
	// tampering's), as version 1 after the rotation.
	dec, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: v1, Context: ec})
	if err != nil || dec.KeyVersion != 1 {
		t.Fatalf("untouched ciphertext: version %d, %v", dec.KeyVersion, err)
	}
}

func TestService_PayloadLimit(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 1, clustertest.Options{})
	ctx := testCtx(t, 30*time.Second)
	s := svc(c, 0)
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "big"})
	max := kzcrypto.DefaultMaxPayload // the service's limit when none is configured
	pt := make([]byte, max)
	rand.Read(pt)
	enc := mustEncrypt(t, ctx, s, k.ID, pt, keys.Context{})
	dec, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: enc.Ciphertext})
	if err != nil || !bytes.Equal(dec.Plaintext, pt) {
		t.Fatalf("round trip at exactly the limit: %v", err)
	}
	_, err = s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: append(pt, 0)})
	if !errors.Is(err, kzcrypto.ErrPayloadTooLarge) {
		t.Fatalf("encrypt of limit+1 bytes: got %v, want ErrPayloadTooLarge", err)
	}
	if bytes.Contains([]byte(err.Error()), pt[:16]) {
		t.Fatal("the error carries the plaintext")
	}
	// A ciphertext longer than any the limit allows is refused by size.
	_, err = s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: append(bytes.Clone(enc.Ciphertext), 0)})
	if !errors.Is(err, kzcrypto.ErrPayloadTooLarge) {
		t.Fatalf("decrypt of an oversized ciphertext: got %v, want ErrPayloadTooLarge", err)
	}
}

// TestService_PurgedKeyCiphertext: once a key is purged, its ciphertexts
// fail like any bad ciphertext on every node, and the purge happened
// only once the deletion time had passed.
func TestService_PurgedKeyCiphertext(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	k := mustCreate(t, ctx, svc(c, 0), keys.CreateParams{Name: "doomed"})
	keep := mustCreate(t, ctx, svc(c, 0), keys.CreateParams{Name: "keep"})
	enc := mustEncrypt(t, ctx, svc(c, 1), k.ID, []byte("gone soon"), keys.Context{})
	pending, err := svc(c, 2).ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}, PendingWindow: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 45*time.Second, "the purge on every node", func() bool {
		for _, n := range c.Nodes {
			if !n.Server().FSM().IsTombstoned(k.ID) {
				return false
			}
			if now := time.Now().UnixNano(); now < pending.DeletionAt {
				t.Fatalf("purged %s before its deletion time", time.Duration(pending.DeletionAt-now))
			}
		}
		return true
	})
	tomb, _ := c.Nodes[0].Server().FSM().Tombstone(k.ID)
	if tomb.PurgedAt < pending.DeletionAt {
		t.Fatalf("purge proposed at %d, before the deletion time %d", tomb.PurgedAt, pending.DeletionAt)
	}
	for i := range c.Nodes {
		s := svc(c, i)
		_, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: enc.Ciphertext})
		if !isDecryptFailure(err) {
			t.Errorf("node %d: decrypt: got %v, want ErrDecrypt", i, err)
		}
		_, err = s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext, DestinationKeyID: keep.ID})
		if !isDecryptFailure(err) {
			t.Errorf("node %d: re-encrypt: got %v, want ErrDecrypt", i, err)
		}
		_, err = s.Decrypt(ctx, keys.DecryptParams{Organization: org, KeyID: k.ID, Ciphertext: enc.Ciphertext})
		if !errors.Is(err, fsm.ErrKeyNotFound) {
			t.Errorf("node %d: decrypt naming the purged key: got %v, want ErrKeyNotFound", i, err)
		}
		_, err = s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: []byte("x")})
		if !errors.Is(err, fsm.ErrKeyNotFound) {
			t.Errorf("node %d: encrypt: got %v, want ErrKeyNotFound", i, err)
		}
		if _, err := s.GetKey(ctx, org, k.ID, true); !errors.Is(err, fsm.ErrKeyNotFound) {
			t.Errorf("node %d: get: got %v, want ErrKeyNotFound", i, err)
		}
	}
	// A purged id is never reused and the other key is untouched.
	if _, err := svc(c, 0).GetKey(ctx, org, keep.ID, false); err != nil {
		t.Fatal(err)
	}
}

// TestService_ConcurrentCrypto runs crypto on every node while the key
// rotates and another key is purged, under the race detector: the
// material cache must serve every version, and every ciphertext must
// decrypt on every node.
func TestService_ConcurrentCrypto(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 60*time.Second)
	k := mustCreate(t, ctx, svc(c, 0), keys.CreateParams{Name: "busy"})
	doomed := mustCreate(t, ctx, svc(c, 0), keys.CreateParams{Name: "doomed"})
	doomedCT := mustEncrypt(t, ctx, svc(c, 0), doomed.ID, []byte("x"), keys.Context{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	stop := make(chan struct{})
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				enc, dec := svc(c, (w+i)%3), svc(c, (w+i+1)%3)
				pt := []byte(fmt.Sprintf("worker %d message %d", w, i))
				ec := keys.Context{Map: map[string]string{"w": fmt.Sprint(w)}}
				e, err := enc.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: pt, Context: ec})
				if err != nil {
					errs <- fmt.Errorf("encrypt: %w", err)
					return
				}
				d, err := dec.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: e.Ciphertext, Context: ec})
				if err != nil || !bytes.Equal(d.Plaintext, pt) {
					errs <- fmt.Errorf("decrypt of v%d on another node: %q, %w", e.KeyVersion, d.Plaintext, err)
					return
				}
				if _, err := dec.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: e.Ciphertext, Context: ec}); err != nil {
					errs <- fmt.Errorf("re-encrypt: %w", err)
					return
				}
				// The doomed key's ciphertext: fine until it goes,
				// then only ever a generic failure.
				_, err = enc.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: doomedCT.Ciphertext})
				if err != nil && !isDecryptFailure(err) && !errors.Is(err, keys.ErrKeyDisabled) {
					errs <- fmt.Errorf("decrypt of the doomed key's ciphertext: %w", err)
					return
				}
			}
		}()
	}
	// Stops the workers before the zone shuts down, also when the test
	// fails early.
	var stopOnce sync.Once
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(halt)
	for i := range 5 {
		if _, err := svc(c, i%3).RotateKey(ctx, keys.RotateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}}); err != nil {
			t.Error(err)
		}
	}
	if _, err := svc(c, 1).ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: keys.KeyRef{Organization: org, KeyID: doomed.ID}, PendingWindow: time.Second}); err != nil {
		t.Error(err)
	}
	clustertest.WaitFor(t, 45*time.Second, "the purge on every node", func() bool {
		for _, n := range c.Nodes {
			if !n.Server().FSM().IsTombstoned(doomed.ID) {
				return false
			}
		}
		return true
	})
	halt()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range c.Nodes {
		if _, err := svc(c, i).Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: doomedCT.Ciphertext}); !isDecryptFailure(err) {
			t.Errorf("node %d: decrypt of a purged key's ciphertext: got %v, want ErrDecrypt", i, err)
		}
	}
}
