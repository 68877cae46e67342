package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func testREK(t testing.TB, fill byte) (*REK, []byte) {
	t.Helper()
	raw := bytes.Repeat([]byte{fill}, MaterialSize)
	r, err := NewREK(raw)
	if err != nil {
		t.Fatalf("NewREK: %v", err)
	}
	return r, raw
}

func TestREK_WrapUnwrap(t *testing.T) {
	rek, _ := testREK(t, 0x11)
	id := KeyID{0xaa}
	material := bytes.Repeat([]byte{0x42}, MaterialSize)

	wrapped, err := rek.Wrap(nil, id, 3, material)
	if err != nil {
		t.Fatalf("Wrap: got error %v, want nil", err)
	}
	if want := NonceSize + MaterialSize + 16; len(wrapped) != want {
		t.Errorf("wrapped length: got %d, want %d", len(wrapped), want)
	}
	if bytes.Contains(wrapped, material) {
		t.Errorf("wrapped blob contains the material in the clear")
	}
	got, err := rek.Unwrap(id, 3, wrapped)
	if err != nil {
		t.Fatalf("Unwrap: got error %v, want nil", err)
	}
	if !bytes.Equal(got, material) {
		t.Errorf("Unwrap: got %x, want %x", got, material)
	}
	again, _ := rek.Wrap(nil, id, 3, material)
	if bytes.Equal(again, wrapped) {
		t.Errorf("two wraps: got identical blobs, want fresh nonces")
	}
}

func TestREK_UnwrapFails(t *testing.T) {
	rek, _ := testREK(t, 0x11)
	other, _ := testREK(t, 0x22)
	id := KeyID{0xaa}
	wrapped, err := rek.Wrap(nil, id, 3, bytes.Repeat([]byte{0x42}, MaterialSize))
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(wrapped)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		rek     *REK
		id      KeyID
		version uint32
		wrapped []byte
	}{
		{"other REK", other, id, 3, wrapped},
		{"other key id", rek, KeyID{0xab}, 3, wrapped},
		{"other version", rek, id, 4, wrapped},
		{"version 0", rek, id, 0, wrapped},
		{"flipped nonce", rek, id, 3, flip(0)},
		{"flipped body", rek, id, 3, flip(NonceSize + 5)},
		{"flipped tag", rek, id, 3, flip(len(wrapped) - 1)},
		{"truncated", rek, id, 3, wrapped[:len(wrapped)-1]},
		{"extended", rek, id, 3, append(bytes.Clone(wrapped), 0)},
		{"empty", rek, id, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rek.Unwrap(tt.id, tt.version, tt.wrapped)
			if err != ErrUnwrap {
				t.Errorf("got %x, %v, want nil, ErrUnwrap", got, err)
			}
		})
	}
}

func TestREK_WrapInvalid(t *testing.T) {
	rek, _ := testREK(t, 0x11)
	tests := []struct {
		name     string
		version  uint32
		material []byte
		want     error
	}{
		{"short material", 1, make([]byte, 31), ErrMaterialSize},
		{"long material", 1, make([]byte, 33), ErrMaterialSize},
		{"version 0", 0, make([]byte, 32), ErrInvalidVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := rek.Wrap(nil, KeyID{}, tt.version, tt.material); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := rek.Wrap(bytes.NewReader(nil), KeyID{}, 1, make([]byte, 32)); err == nil {
		t.Errorf("empty reader: got nil error, want one")
	}
}

func TestREK_ID(t *testing.T) {
	a, rawA := testREK(t, 0x11)
	a2, _ := testREK(t, 0x11)
	b, _ := testREK(t, 0x22)
	if a.ID() != a2.ID() {
		t.Errorf("same key: got IDs %q and %q, want equal", a.ID(), a2.ID())
	}
	if a.ID() == b.ID() {
		t.Errorf("different keys: got the same ID %q, want different", a.ID())
	}
	if len(a.ID()) != 16 {
		t.Errorf("ID length: got %d, want 16", len(a.ID()))
	}
	// Known answer: hex(HMAC-SHA256(key=0x11*32, "keyzone/v1/rek-id")[:8]),
	// computed independently so a change to the fingerprint is caught:
	// it is stored beside every wrapped version.
	if want := "7d2ea3d63c96a9da"; a.ID() != want {
		t.Errorf("ID: got %q, want %q", a.ID(), want)
	}
	if strings.Contains(a.ID(), hex.EncodeToString(rawA[:4])) {
		t.Errorf("ID %q contains key bytes", a.ID())
	}
	if s := fmt.Sprintf("%v %+v %#v", a, a, a); strings.Contains(s, hex.EncodeToString(rawA[:4])) {
		t.Errorf("formatted REK contains key bytes: %s", s)
	}
}

func TestParseREK(t *testing.T) {
	raw := byteRange(0x40, 0x60)
	b64 := base64.StdEncoding.EncodeToString(raw)
	want, _ := NewREK(raw)

	valid := []struct {
		name string
		in   string
	}{
		{"plain", b64},
		{"trailing newline", b64 + "\n"},
		{"surrounding space", "  \t" + b64 + " \r\n"},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseREK(tt.in)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got.ID() != want.ID() {
				t.Errorf("ID: got %q, want %q", got.ID(), want.ID())
			}
		})
	}

	invalid := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"not base64", "this is not base64!!"},
		{"url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)))},
		{"unpadded", strings.TrimRight(b64, "=")},
		{"31 bytes", base64.StdEncoding.EncodeToString(raw[:31])},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 1))},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16])},
		{"hex", hex.EncodeToString(raw)},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseREK(tt.in)
			if !errors.Is(err, ErrInvalidREK) {
				t.Fatalf("got %v, %v, want ErrInvalidREK", got, err)
			}
			assertNoSecret(t, err, tt.in, raw)
		})
	}

	for _, n := range []int{0, 16, 31, 33, 64} {
		in := bytes.Repeat([]byte{0x5c}, n)
		_, err := NewREK(in)
		if !errors.Is(err, ErrInvalidREK) {
			t.Errorf("NewREK(%d bytes): got %v, want ErrInvalidREK", n, err)
		}
		assertNoSecret(t, err, "", in)
	}
}

// assertNoSecret fails if err's message contains input text or key bytes
// in any common encoding.
func assertNoSecret(t *testing.T, err error, input string, key []byte) {
	t.Helper()
	msg := err.Error()
	if len(input) >= 8 && strings.Contains(msg, input) {
		t.Errorf("error %q contains the input", msg)
	}
	if len(key) < 8 {
		return
	}
	for _, enc := range []string{
		string(key[:8]),
		hex.EncodeToString(key[:8]),
		base64.StdEncoding.EncodeToString(key)[:8],
		fmt.Sprint(key[:4])[1:],
	} {
		if strings.Contains(msg, enc) {
			t.Errorf("error %q contains key bytes (%q)", msg, enc)
		}
	}
}

func TestREK_ConstructorCopies(t *testing.T) {
	raw := bytes.Repeat([]byte{0x11}, MaterialSize)
	rek, err := NewREK(raw)
	if err != nil {
		t.Fatalf("NewREK: %v", err)
	}
	id := KeyID{1}
	wrapped, _ := rek.Wrap(nil, id, 1, make([]byte, MaterialSize))
	clear(raw)
	if _, err := rek.Unwrap(id, 1, wrapped); err != nil {
		t.Errorf("after wiping the caller's bytes: got %v, want nil", err)
	}
}

func TestREK_PeerToken(t *testing.T) {
	a, _ := NewREK(bytes.Repeat([]byte{1}, 32))
	a2, _ := NewREK(bytes.Repeat([]byte{1}, 32))
	b, _ := NewREK(bytes.Repeat([]byte{2}, 32))
	if a.PeerToken() != a2.PeerToken() {
		t.Error("the same REK derived two peer tokens")
	}
	if a.PeerToken() == b.PeerToken() || len(a.PeerToken()) != 64 {
		t.Errorf("peer tokens %q and %q: want distinct 64-hex-char tokens", a.PeerToken(), b.PeerToken())
	}
	if len(a.GossipKey()) != 32 || bytes.Equal(a.GossipKey(), b.GossipKey()) || !bytes.Equal(a.GossipKey(), a2.GossipKey()) {
		t.Error("gossip keys: want 32 bytes, equal for equal REKs, different otherwise")
	}
	if hex.EncodeToString(a.GossipKey()) == a.PeerToken() {
		t.Error("the gossip key equals the peer token")
	}
	if a.PeerToken() == a.ID() || strings.Contains(a.PeerToken(), a.ID()) {
		t.Error("the peer token is related to the public REK id")
	}
}

// TestREK_ImportKeyDomain: a wrapped import private key and wrapped
// version material are sealed under different labels, so neither unwraps
// as the other, whatever version number is tried.
func TestREK_ImportKeyDomain(t *testing.T) {
	rek, _ := testREK(t, 0x11)
	var id KeyID
	id[0] = 7
	seed := bytes.Repeat([]byte{0x5a}, MaterialSize)
	wrapped, err := rek.WrapImportKey(nil, id, seed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rek.UnwrapImportKey(id, wrapped)
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("round trip: %v", err)
	}
	for _, v := range []uint32{1, 2, math.MaxUint32} {
		if _, err := rek.Unwrap(id, v, wrapped); !errors.Is(err, ErrUnwrap) {
			t.Errorf("import key unwrapped as version %d: %v", v, err)
		}
	}
	material, err := rek.Wrap(nil, id, 1, seed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rek.UnwrapImportKey(id, material); !errors.Is(err, ErrUnwrap) {
		t.Errorf("version material unwrapped as an import key: %v", err)
	}
	var other KeyID
	if _, err := rek.UnwrapImportKey(other, wrapped); !errors.Is(err, ErrUnwrap) {
		t.Errorf("import key of another key id: %v", err)
	}
	if _, err := rek.WrapImportKey(nil, id, seed[:16]); !errors.Is(err, ErrMaterialSize) {
		t.Errorf("short seed: %v", err)
	}
}
