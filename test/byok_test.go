package test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// testClock is a clock the test moves forward, shared by every node.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func randomBytes(t *testing.T, n int) []byte { b := make([]byte, n); rand.Read(b); return b }
func sealTo(t *testing.T, p wire.ImportParameters, m []byte) []byte {
	t.Helper()
	sealed, err := client.SealKeyMaterial(p, m)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// versionMaterial unwraps version n of key id as zone z holds it.
func versionMaterial(t *testing.T, z *clustertest.Cluster, id string, n uint32) []byte {
	t.Helper()
	k, ok := z.Leader().Server().FSM().Key(id)
	if !ok {
		t.Fatalf("key %s not in %s", id, z.Zone())
	}
	v, ok := k.Version(n)
	if !ok {
		t.Fatalf("key %s has no version %d in %s", id, n, z.Zone())
	}
	kid, err := kzcrypto.ParseKeyID(id)
	if err != nil {
		t.Fatal(err)
	}
	m, err := z.REK.Unwrap(kid, n, v.Wrapped)
	if err != nil {
		t.Fatalf("unwrap version %d: %v", n, err)
	}
	return m
}

// TestBYOK_ImportAcrossZones imports material into a multi-zone key of
// origin external and uses it in both zones, then walks every refusal.
func TestBYOK_ImportAcrossZones(t *testing.T) {
	clock := &testClock{}
	zones := clustertest.NewZones(t, 3, []string{"zone-a", "zone-b"}, clustertest.Options{
		Keys: keys.Config{Now: clock.Now},
	})
	a, b := zones[0], zones[1]
	ctx := testCtx(t, 120*time.Second)
	// One session across the clients: what one node changed, the next
	// node asked waits for (read-your-writes).
	sess := client.NewSession()
	clA0, clA2, clB := sessionClient(t, a, 0, sess), sessionClient(t, a, 2, sess), sessionClient(t, b, 0, sess)

	k, err := clA0.CreateKey(ctx, wire.CreateKeyRequest{Name: "byok", Origin: fsm.OriginExternal, ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if k.State != string(fsm.KeyStatePendingImport) || k.CurrentVersion != 0 || k.Origin != fsm.OriginExternal {
		t.Fatalf("created key: state %s version %d origin %s, want pending_import 0 external", k.State, k.CurrentVersion, k.Origin)
	}
	// Crypto waits for material.
	_, err = clA0.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")})
	wantAPIError(t, err, 409, wire.CodeKeyDisabled)

	// Parameters drawn on one node, leadership moves, material imported
	// through another node: the private key lives in the replicated state.
	material := randomBytes(t, 32)
	p1, err := clA0.ImportParameters(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.PublicKey) != 32 || p1.ImportToken == "" || p1.Algorithm != client.ImportAlgorithm ||
		p1.ExpiresAt.Sub(clock.Now()) < 23*time.Hour {
		t.Fatalf("import parameters %+v: want a 32-byte key, a token and a 24 h expiry", p1)
	}
	if err := a.Leader().Server().Node().TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	sealed1 := sealTo(t, p1, material)
	k1, err := clA2.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: p1.ImportToken, EncryptedMaterial: sealed1})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if k1.State != string(fsm.KeyStateEnabled) || k1.CurrentVersion != 1 {
		t.Fatalf("after the first import: state %s version %d, want enabled 1", k1.State, k1.CurrentVersion)
	}
	enc1, err := clA0.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("under v1"), AssociatedData: []byte("ad")})
	if err != nil || enc1.KeyVersion != 1 {
		t.Fatalf("encrypt under the imported version: %+v, %v", enc1, err)
	}

	// The token imports once.
	_, err = clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: p1.ImportToken, EncryptedMaterial: sealed1})
	wantAPIError(t, err, 409, wire.CodeImportTokenUsed)

	// The same material again, through the replica zone (forwarded to the
	// primary): a new version with an unrelated key.
	k2, err := clB.ImportMaterial(ctx, k.ID, material)
	if err != nil {
		t.Fatalf("second import through zone-b: %v", err)
	}
	if k2.CurrentVersion != 2 && k2.PendingVersion != 2 {
		t.Fatalf("after the second import: %+v", k2)
	}
	waitConverged(t, zones, a, k.ID)
	clustertest.WaitFor(t, 30*time.Second, "version 2 to encrypt", func() bool {
		got, ok := a.Leader().Server().FSM().Key(k.ID)
		return ok && got.CurrentVersion == 2
	})
	waitConverged(t, zones, a, k.ID)
	m1, m2 := versionMaterial(t, a, k.ID, 1), versionMaterial(t, a, k.ID, 2)
	if bytes.Equal(m1, m2) || bytes.Equal(m1, material) || bytes.Equal(m2, material) {
		t.Fatal("two imports of the same material gave the same version key, or the material itself")
	}
	if mb := versionMaterial(t, b, k.ID, 2); !bytes.Equal(mb, m2) {
		t.Fatal("zone-b holds another version 2 than zone-a")
	}
	enc2, err := clB.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("under v2"), AssociatedData: []byte("ad")})
	if err != nil || enc2.KeyVersion != 2 {
		t.Fatalf("encrypt in zone-b under version 2: %+v, %v", enc2, err)
	}
	// Each ciphertext decrypts in both zones, and only as the version it
	// names: relabelled as the other version, it fails.
	for _, cl := range []*client.Client{clA2, clB} {
		for _, e := range []wire.EncryptResponse{enc1, enc2} {
			d, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: e.Ciphertext, AssociatedData: []byte("ad")})
			if err != nil || d.KeyVersion != e.KeyVersion {
				t.Fatalf("decrypt version %d: %+v, %v", e.KeyVersion, d, err)
			}
		}
		swapped := bytes.Clone(enc1.Ciphertext)
		swapped[1+16+3] = 2 // version field: 1 -> 2
		_, err := cl.Decrypt(ctx, wire.DecryptRequest{Ciphertext: swapped, AssociatedData: []byte("ad")})
		wantAPIError(t, err, 422, wire.CodeDecryptFailed)
	}

	// Refusals.
	t.Run("wrong wrapping key", func(t *testing.T) {
		p, err := clA0.ImportParameters(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		other, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := hpke.Seal(other.PublicKey(), hpke.HKDFSHA256(), hpke.AES256GCM(), p.HPKEInfo, material)
		if err != nil {
			t.Fatal(err)
		}
		_, err = clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: p.ImportToken, EncryptedMaterial: sealed})
		wantAPIError(t, err, 400, wire.CodeImportUnseal)
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.Message != keys.ErrImportUnseal.Error() {
			t.Errorf("message %q, want exactly %q", apiErr.Message, keys.ErrImportUnseal.Error())
		}
		// Sealed to the right key but for another key id: the info binds it.
		sealed, err = hpke.Seal(mustPublicKey(t, p.PublicKey), hpke.HKDFSHA256(), hpke.AES256GCM(),
			keys.ImportInfo("another-key", p.TokenID), material)
		if err != nil {
			t.Fatal(err)
		}
		_, err = clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: p.ImportToken, EncryptedMaterial: sealed})
		wantAPIError(t, err, 400, wire.CodeImportUnseal)
	})
	t.Run("material length", func(t *testing.T) {
		for _, n := range []int{15, 65} {
			p, err := clA0.ImportParameters(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			_, err = clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: p.ImportToken, EncryptedMaterial: sealTo(t, p, randomBytes(t, n))})
			wantAPIError(t, err, 400, wire.CodeInvalidArgument)
		}
	})
	t.Run("token of replaced parameters", func(t *testing.T) {
		old, err := clA0.ImportParameters(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := clA0.ImportParameters(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		_, err = clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: old.ImportToken, EncryptedMaterial: sealTo(t, old, material)})
		wantAPIError(t, err, 400, wire.CodeImportTokenInvalid)
	})
	t.Run("raw material over plain HTTP", func(t *testing.T) {
		_, err := clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{KeyMaterial: material})
		wantAPIError(t, err, 403, wire.CodeRawImportRefused)
	})
	t.Run("key of origin keyzone", func(t *testing.T) {
		own, err := clA0.CreateKey(ctx, wire.CreateKeyRequest{Name: "own"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = clA0.ImportParameters(ctx, own.ID)
		wantAPIError(t, err, 409, wire.CodeOriginNotExternal)
		_, err = clA0.ImportKeyMaterial(ctx, own.ID, wire.ImportKeyMaterialRequest{ImportToken: p1.ImportToken, EncryptedMaterial: sealed1})
		wantAPIError(t, err, 409, wire.CodeOriginNotExternal)
	})
	t.Run("key pending deletion", func(t *testing.T) {
		ext, err := clA0.CreateKey(ctx, wire.CreateKeyRequest{Name: "doomed", Origin: fsm.OriginExternal})
		if err != nil {
			t.Fatal(err)
		}
		p, err := clA0.ImportParameters(ctx, ext.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := clA0.ScheduleDeletion(ctx, ext.ID, 7*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		_, err = clA0.ImportKeyMaterial(ctx, ext.ID, wire.ImportKeyMaterialRequest{ImportToken: p.ImportToken, EncryptedMaterial: sealTo(t, p, material)})
		wantAPIError(t, err, 409, wire.CodeInvalidState)
		_, err = clA0.ImportParameters(ctx, ext.ID)
		wantAPIError(t, err, 409, wire.CodeInvalidState)
	})
	// Last, as it moves every node's clock a day on.
	t.Run("expired token", func(t *testing.T) {
		p, err := clA0.ImportParameters(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(24*time.Hour + time.Minute)
		_, err = clA0.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{ImportToken: p.ImportToken, EncryptedMaterial: sealTo(t, p, material)})
		wantAPIError(t, err, 400, wire.CodeImportTokenExpired)
	})
}

func sessionClient(t *testing.T, z *clustertest.Cluster, i int, s *client.Session) *client.Client {
	t.Helper()
	cl, err := client.New(z.Nodes[i].Addr(), z.Token, client.WithSession(s))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func mustPublicKey(t *testing.T, b []byte) hpke.PublicKey {
	t.Helper()
	pk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// TestBYOK_RawImport checks the raw (unsealed) import: refused by
// default, refused over plain HTTP even when allowed, and, when allowed
// and over TLS, imported like sealed material (the service is called the
// way the API calls it for a TLS request, since the API has no TLS
// listener yet).
func TestBYOK_RawImport(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Keys: keys.Config{AllowRawImport: true}})
	ctx := testCtx(t, 60*time.Second)
	cl := zoneClient(t, c, 0)
	k, err := cl.CreateKey(ctx, wire.CreateKeyRequest{Name: "raw", Origin: fsm.OriginExternal})
	if err != nil {
		t.Fatal(err)
	}
	material := randomBytes(t, 32)
	_, err = cl.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{KeyMaterial: material})
	wantAPIError(t, err, 403, wire.CodeRawImportRefused)

	svc := c.Nodes[0].Server().Keys()
	ref := keys.KeyRef{Organization: c.Org.ID, KeyID: k.ID}
	got, err := svc.ImportKeyMaterial(ctx, keys.ImportMaterialParams{KeyRef: ref, Raw: material, OverTLS: true})
	if err != nil {
		t.Fatalf("raw import over TLS: %v", err)
	}
	if got.State != fsm.KeyStateEnabled || got.CurrentVersion != 1 {
		t.Fatalf("after a raw import: state %s version %d", got.State, got.CurrentVersion)
	}
	if _, err := cl.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.ImportKeyMaterial(ctx, keys.ImportMaterialParams{KeyRef: ref, Raw: randomBytes(t, 8), OverTLS: true})
	if !errors.Is(err, keys.ErrInvalidArgument) {
		t.Fatalf("raw import of 8 bytes: %v, want ErrInvalidArgument", err)
	}
}

// TestBYOK_README runs the README's "Bring your own key and Tink"
// section, verbatim, against `keyzone dev --zones 2` of the real binary.
func TestBYOK_README(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash to run the README's commands")
	}
	blocks := readmeSection(t, "Bring your own key and Tink")
	if len(blocks) != 3 {
		t.Fatalf("the section has %d shell blocks, want 3 (import, raw import over TLS, Tink)", len(blocks))
	}
	// The raw import's block starts its own dev cluster with TLS, which
	// the test starts instead (on free ports), and runs last: it sources
	// that cluster's env file.
	const tlsDevLine = "./bin/keyzone dev --zones 2 --tls --api-port 8400 --env-file .dev/env-tls   # in another shell"
	if blocks[1][0] != tlsDevLine {
		t.Fatalf("the raw import block starts with %q, want %q", blocks[1][0], tlsDevLine)
	}
	tlsLines := slices.Clone(blocks[1][1:])
	blocks = [][]string{blocks[0], blocks[2]}
	// The README runs from the repository root; the example is built here
	// instead of by its go build line, which needs the module.
	const buildLine = "go build -o bin/tink-envelope ./examples/tink-envelope"
	tinkLines := slices.DeleteFunc(slices.Clone(blocks[1]), func(l string) bool { return l == buildLine })
	if len(tinkLines) != len(blocks[1])-1 {
		t.Fatalf("the Tink block does not build the example with %q", buildLine)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildKeyzone(t)
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "keyzone")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "tink-envelope"), "../examples/tink-envelope")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), readme, 0o644); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, bin, dir, "--zones", "2")
	tlsDev := startDevAt(t, bin, dir, filepath.Join(dir, ".dev", "env-tls"), filepath.Join(dir, "data-tls"), "--zones", "2", "--tls")

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYZONE_") {
			env = append(env, kv)
		}
	}
	lines := append(append(slices.Clone(blocks[0]), tinkLines...), tlsLines...)
	outs := runScript(t, dir, env, lines)
	out := func(prefix string, nth int) string {
		t.Helper()
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				if nth == 0 {
					return outs[i]
				}
				nth--
			}
		}
		t.Fatalf("the section has no command %q", prefix)
		return ""
	}
	if got := field(out(`./bin/keyzone key get "$KEY"`, 0), "State"); got != "pending_import" {
		t.Errorf("a new external key is %q, want pending_import", got)
	}
	first := out(`./bin/keyzone key import "$KEY"`, 0)
	if field(first, "State") != "enabled" || field(first, "Current version") != "1" {
		t.Errorf("the first import printed:\n%s", first)
	}
	if got := out("KEYZONE_ADDR=$KEYZONE_ADDR_ZONE_B ./bin/keyzone decrypt", 0); got != "order #2001\n" {
		t.Errorf("decrypt in zone-b printed %q, want %q", got, "order #2001\n")
	}
	second := out(`./bin/keyzone key import "$KEY"`, 1)
	if field(second, "Pending version") != "2" && field(second, "Current version") != "2" {
		t.Errorf("the second import printed:\n%s", second)
	}
	// Version 2 encrypts once zone-b holds it, usually before key get.
	if kg := out(`./bin/keyzone key get "$KEY"`, 1); field(kg, "Current version") != "2" && field(kg, "Pending version") != "2" {
		t.Errorf("key get after the second import:\n%s", kg)
	}
	if got := out("cmp README.md README.copy", 0); got != "same\n" {
		t.Errorf("the Tink round trip printed %q, want %q", got, "same\n")
	}
	if raw := out(`./bin/keyzone key import "$RKEY" --material-file material.bin --raw`, 0); field(raw, "State") != "enabled" {
		t.Errorf("the raw import over TLS printed:\n%s", raw)
	}
	if got := out("echo -n 'order #2002'", 0); got != "order #2002\n" {
		t.Errorf("the raw-imported key's round trip through zone-b printed %q, want %q", got, "order #2002\n")
	}
	tlsDev.interrupt()
	dev.interrupt()
}
