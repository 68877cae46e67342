package keys_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// boundedZone starts a one-node zone whose bounds differ from the test
// defaults, so that "below the configured minimum" is tested against the
// configuration rather than a constant.
func boundedZone(t *testing.T) (*clustertest.Cluster, *keys.Service) {
	t.Helper()
	c := clustertest.New(t, 1, clustertest.Options{Keys: keys.Config{
		MinRotationPeriod:     time.Hour,
		MinDeletionWindow:     time.Hour,
		MaxDeletionWindow:     48 * time.Hour,
		DefaultDeletionWindow: 24 * time.Hour,
	}})
	return c, svc(c, 0)
}

func TestService_Validation(t *testing.T) {
	t.Parallel()
	c, s := boundedZone(t)
	ctx := testCtx(t, 60*time.Second)
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "target"})
	ref := keys.KeyRef{Organization: org, KeyID: k.ID}
	str := func(v string) *string { return &v }
	tags := func(v ...string) *[]string { return &v }
	dur := func(d time.Duration) *time.Duration { return &d }
	manyTags := make([]string, 51)
	for i := range manyTags {
		manyTags[i] = strings.Repeat("t", i+1)
	}
	token := func(b string) string { return base64.RawURLEncoding.EncodeToString([]byte(b)) }

	type call func(context.Context) error
	create := func(p keys.CreateParams) call {
		return func(ctx context.Context) error {
			p.Organization = org
			if p.Name == "" && p.Description != "no name" {
				p.Name = "valid"
			}
			_, err := s.CreateKey(ctx, p)
			return err
		}
	}
	update := func(p keys.UpdateParams) call {
		return func(ctx context.Context) error {
			p.KeyRef = ref
			_, err := s.UpdateKey(ctx, p)
			return err
		}
	}
	list := func(p keys.ListParams) call {
		return func(ctx context.Context) error {
			p.Organization = org
			_, err := s.ListKeys(ctx, p)
			return err
		}
	}
	deletion := func(w time.Duration) call {
		return func(ctx context.Context) error {
			_, err := s.ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: ref, PendingWindow: w})
			return err
		}
	}
	cases := []struct {
		name string
		call call
	}{
		{"create/name empty", create(keys.CreateParams{Description: "no name"})},
		{"create/name 257 characters", create(keys.CreateParams{Name: strings.Repeat("é", 257)})},
		{"create/name NUL", create(keys.CreateParams{Name: "a\x00b"})},
		{"create/name newline", create(keys.CreateParams{Name: "a\nb"})},
		{"create/name DEL", create(keys.CreateParams{Name: "a\x7fb"})},
		{"create/name C1 control", create(keys.CreateParams{Name: "a\u0085b"})},
		{"create/name invalid UTF-8", create(keys.CreateParams{Name: "a\xffb"})},
		{"create/name leading space", create(keys.CreateParams{Name: " a"})},
		{"create/description too long", create(keys.CreateParams{Description: strings.Repeat("d", 8193)})},
		{"create/description control", create(keys.CreateParams{Description: "a\x01"})},
		{"create/51 tags", create(keys.CreateParams{Tags: manyTags})},
		{"create/empty tag", create(keys.CreateParams{Tags: []string{"a", ""}})},
		{"create/tag too long", create(keys.CreateParams{Tags: []string{strings.Repeat("t", 129)}})},
		{"create/tag control", create(keys.CreateParams{Tags: []string{"a\tb"}})},
		{"create/usage unsupported", create(keys.CreateParams{Usage: "sign_verify"})},
		{"create/algorithm unsupported", create(keys.CreateParams{Algorithm: "rsa_2048"})},
		{"create/origin unknown", create(keys.CreateParams{Origin: "hsm"})},
		{"create/replica zones", create(keys.CreateParams{ReplicaZones: []string{"zone-b"}})},
		{"create/rotation below minimum", create(keys.CreateParams{RotationPeriod: 59 * time.Minute})},
		{"create/rotation negative", create(keys.CreateParams{RotationPeriod: -time.Hour})},
		{"create/rotation above 100 years", create(keys.CreateParams{RotationPeriod: 101 * 365 * 24 * time.Hour})},
		{"create/idempotency key space", create(keys.CreateParams{IdempotencyKey: "a b"})},
		{"create/idempotency key NUL", create(keys.CreateParams{IdempotencyKey: "a\x00"})},
		{"create/idempotency key non-ASCII", create(keys.CreateParams{IdempotencyKey: "clé"})},
		{"create/idempotency key 129", create(keys.CreateParams{IdempotencyKey: strings.Repeat("k", 129)})},

		{"update/nothing", update(keys.UpdateParams{})},
		{"update/name empty", update(keys.UpdateParams{Name: str("")})},
		{"update/name control", update(keys.UpdateParams{Name: str("x\x1b[31m")})},
		{"update/description too long", update(keys.UpdateParams{Description: str(strings.Repeat("d", 8193))})},
		{"update/51 tags", update(keys.UpdateParams{Tags: &manyTags})},
		{"update/empty tag", update(keys.UpdateParams{Tags: tags("")})},
		{"update/rotation below minimum", update(keys.UpdateParams{RotationPeriod: dur(time.Second)})},
		{"update/rotation negative", update(keys.UpdateParams{RotationPeriod: dur(-time.Hour)})},

		{"rotate/idempotency key space", func(ctx context.Context) error {
			_, err := s.RotateKey(ctx, keys.RotateParams{KeyRef: ref, IdempotencyKey: "has space"})
			return err
		}},
		{"rotate/idempotency key 129", func(ctx context.Context) error {
			_, err := s.RotateKey(ctx, keys.RotateParams{KeyRef: ref, IdempotencyKey: strings.Repeat("k", 129)})
			return err
		}},

		{"list/page size -1", list(keys.ListParams{PageSize: -1})},
		{"list/page size 1001", list(keys.ListParams{PageSize: 1001})},
		{"list/page token garbage", list(keys.ListParams{PageToken: "!!!"})},
		{"list/page token padded", list(keys.ListParams{PageToken: token("after:"+k.ID) + "="})},
		{"list/page token standard base64", list(keys.ListParams{PageToken: base64.StdEncoding.EncodeToString([]byte("after:" + k.ID + "??>"))})},
		{"list/page token other prefix", list(keys.ListParams{PageToken: token("before:" + k.ID)})},
		{"list/page token bad id", list(keys.ListParams{PageToken: token("after:../../x")})},
		{"list/page token upper-case id", list(keys.ListParams{PageToken: token("after:" + strings.ToUpper(k.ID))})},
		{"list/state bogus", list(keys.ListParams{State: "bogus"})},
		{"list/state upper case", list(keys.ListParams{State: "ENABLED"})},

		{"delete/window below minimum", deletion(59 * time.Minute)},
		{"delete/window above maximum", deletion(49 * time.Hour)},
		{"delete/window negative", deletion(-time.Hour)},

		{"data key/64 bits", func(ctx context.Context) error {
			_, err := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID, KeySizeBits: 64})
			return err
		}},
		{"data key/512 bits", func(ctx context.Context) error {
			_, err := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID, KeySizeBits: 512})
			return err
		}},
		{"data key/-256 bits", func(ctx context.Context) error {
			_, err := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID, KeySizeBits: -256})
			return err
		}},
		{"encrypt/context and associated data", func(ctx context.Context) error {
			_, err := s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: []byte("x"),
				Context: keys.Context{Map: map[string]string{"a": "b"}, AssociatedData: []byte("c")}})
			return err
		}},
		{"decrypt/context and associated data", func(ctx context.Context) error {
			_, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: []byte("x"),
				Context: keys.Context{Map: map[string]string{"a": "b"}, AssociatedData: []byte("c")}})
			return err
		}},
		{"re-encrypt/destination context and associated data", func(ctx context.Context) error {
			ct := mustEncrypt(t, ctx, s, k.ID, []byte("x"), keys.Context{})
			_, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: ct.Ciphertext,
				DestinationContext: keys.Context{Map: map[string]string{"a": "b"}, AssociatedData: []byte("c")}})
			return err
		}},
	}
	before := c.Nodes[0].Server().FSM().KeyCount()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctx)
			if !errors.Is(err, keys.ErrInvalidArgument) {
				t.Fatalf("got error %v, want ErrInvalidArgument", err)
			}
		})
	}
	if after := c.Nodes[0].Server().FSM().KeyCount(); after != before {
		t.Errorf("refused creates changed the key count from %d to %d", before, after)
	}
	got, err := s.GetKey(ctx, org, k.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != k.Revision || got.CurrentVersion != 1 || got.State != fsm.KeyStateEnabled {
		t.Errorf("refused calls changed the key: revision %d -> %d, version %d, state %s",
			k.Revision, got.Revision, got.CurrentVersion, got.State)
	}
}

// TestService_ValidationAccepts covers the edges that must pass: limits
// reached but not passed, duplicate tags folded, defaults taken.
func TestService_ValidationAccepts(t *testing.T) {
	t.Parallel()
	_, s := boundedZone(t)
	ctx := testCtx(t, 60*time.Second)
	distinct := make([]string, 47)
	for i := range distinct {
		distinct[i] = strings.Repeat("t", i+1)
	}
	// 50 tags given (the limit counts what is given), 47 kept.
	k := mustCreate(t, ctx, s, keys.CreateParams{
		Name:           strings.Repeat("é", 256),
		Description:    "line one\n\tline two",
		Tags:           append(slices.Clone(distinct), distinct[3], distinct[0], distinct[3]),
		RotationPeriod: time.Hour,
		IdempotencyKey: strings.Repeat("~", 128),
	})
	if !slices.Equal(k.Tags, distinct) {
		t.Errorf("got tags %q, want the 47 distinct tags in order", k.Tags)
	}
	if k.Usage != fsm.UsageSymmetricEncryption || k.Algorithm != fsm.AlgorithmAES256GCM || k.Origin != fsm.OriginKeyzone {
		t.Errorf("got defaults %s/%s/%s", k.Usage, k.Algorithm, k.Origin)
	}
	if k.RotationPolicy.Period != int64(time.Hour) || k.RotationPolicy.NextRotationAt <= k.CreatedAt {
		t.Errorf("got rotation policy %+v for a key created at %d", k.RotationPolicy, k.CreatedAt)
	}
	dup, err := s.UpdateKey(ctx, keys.UpdateParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}, Tags: &[]string{"b", "a", "b", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dup.Tags, []string{"b", "a"}) {
		t.Errorf("update with duplicate tags gave %q, want [b a]", dup.Tags)
	}
	for _, size := range []int{0, 1, 1000} {
		if _, err := s.ListKeys(ctx, keys.ListParams{Organization: org, PageSize: size}); err != nil {
			t.Errorf("page size %d: %v", size, err)
		}
	}
	for _, w := range []time.Duration{0, time.Hour, 48 * time.Hour} {
		k := mustCreate(t, ctx, s, keys.CreateParams{Name: "window"})
		got, err := s.ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: keys.KeyRef{Organization: org, KeyID: k.ID}, PendingWindow: w})
		if err != nil {
			t.Fatalf("window %s: %v", w, err)
		}
		want := w
		if w == 0 {
			want = 24 * time.Hour // the configured default
		}
		if d := time.Duration(got.DeletionAt - got.UpdatedAt); d != want {
			t.Errorf("window %s: deletion %s after the request, want %s", w, d, want)
		}
	}
}

// TestService_MalformedKeyIDs: an id that can't name a key is "not
// found", whichever call names it, and the error does not echo a huge id.
func TestService_MalformedKeyIDs(t *testing.T) {
	t.Parallel()
	_, s := boundedZone(t)
	ctx := testCtx(t, 60*time.Second)
	k := mustCreate(t, ctx, s, keys.CreateParams{Name: "real"})
	ct := mustEncrypt(t, ctx, s, k.ID, []byte("x"), keys.Context{})
	ids := []string{
		"", "nope", strings.ToUpper(k.ID), strings.ReplaceAll(k.ID, "-", ""), "{" + k.ID + "}",
		"urn:uuid:" + k.ID, "../" + k.ID, k.ID + "/..", k.ID + "\x00", " " + k.ID, k.ID[:35] + "g",
		"..%2F..%2F", "ключ-ключ-ключ-ключ-ключ", strings.Repeat("a", 10<<10),
	}
	for _, id := range ids {
		ref := keys.KeyRef{Organization: org, KeyID: id}
		name := "manual rotation"
		calls := map[string]func() error{
			"get":       func() error { _, err := s.GetKey(ctx, org, id, false); return err },
			"get stale": func() error { _, err := s.GetKey(ctx, org, id, true); return err },
			"update": func() error {
				_, err := s.UpdateKey(ctx, keys.UpdateParams{KeyRef: ref, Name: &name})
				return err
			},
			"enable":          func() error { _, err := s.EnableKey(ctx, ref); return err },
			"disable":         func() error { _, err := s.DisableKey(ctx, ref); return err },
			"protect":         func() error { _, err := s.ProtectKey(ctx, ref); return err },
			"unprotect":       func() error { _, err := s.UnprotectKey(ctx, ref); return err },
			"cancel deletion": func() error { _, err := s.CancelDeletion(ctx, ref); return err },
			"rotate":          func() error { _, err := s.RotateKey(ctx, keys.RotateParams{KeyRef: ref}); return err },
			"schedule deletion": func() error {
				_, err := s.ScheduleDeletion(ctx, keys.ScheduleDeletionParams{KeyRef: ref})
				return err
			},
			"encrypt": func() error {
				_, err := s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: id, Plaintext: []byte("x")})
				return err
			},
			"data key": func() error {
				_, err := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: id})
				return err
			},
			"decrypt named": func() error {
				_, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, KeyID: id, Ciphertext: ct.Ciphertext})
				return err
			},
			"re-encrypt named": func() error {
				_, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, KeyID: id, Ciphertext: ct.Ciphertext})
				return err
			},
			"re-encrypt destination": func() error {
				_, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: ct.Ciphertext, DestinationKeyID: id})
				return err
			},
		}
		if id == "" {
			// An empty named key means "none" for decrypt and
			// re-encrypt (the key comes from the ciphertext).
			delete(calls, "decrypt named")
			delete(calls, "re-encrypt named")
			delete(calls, "re-encrypt destination")
		}
		for op, call := range calls {
			err := call()
			if !errors.Is(err, fsm.ErrKeyNotFound) {
				t.Errorf("%s %.40q: got %v, want ErrKeyNotFound", op, id, err)
				continue
			}
			if len(err.Error()) > 200 {
				t.Errorf("%s %.40q: error of %d bytes echoes the id", op, id, len(err.Error()))
			}
		}
	}
	// Nothing of the real key changed.
	got, err := s.GetKey(ctx, org, k.ID, false)
	if err != nil || got.Revision != k.Revision {
		t.Fatalf("the real key changed: %+v, %v", got, err)
	}
}
