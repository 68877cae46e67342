package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func byteRange(from, to int) []byte {
	b := make([]byte, 0, to-from)
	for i := from; i < to; i++ {
		b = append(b, byte(i))
	}
	return b
}

// TestHKDFSHA256_RFC5869 checks the package's only HKDF call path against
// RFC 5869 appendix A.1-A.3 (the SHA-256 cases).
func TestHKDFSHA256_RFC5869(t *testing.T) {
	tests := []struct {
		name            string
		ikm, salt, info []byte
		length          int
		okm             string
	}{
		{
			name:   "A.1 basic",
			ikm:    bytes.Repeat([]byte{0x0b}, 22),
			salt:   byteRange(0x00, 0x0d),
			info:   byteRange(0xf0, 0xfa),
			length: 42,
			okm:    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
		},
		{
			name:   "A.2 long inputs",
			ikm:    byteRange(0x00, 0x50),
			salt:   byteRange(0x60, 0xb0),
			info:   byteRange(0xb0, 0x100),
			length: 82,
			okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" +
				"59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" +
				"cc30c58179ec3e87c14c01d5c1f3434f1d87",
		},
		{
			name:   "A.3 empty salt and info",
			ikm:    bytes.Repeat([]byte{0x0b}, 22),
			salt:   nil,
			info:   nil,
			length: 42,
			okm:    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hkdfSHA256(tt.ikm, tt.salt, tt.info, tt.length)
			if err != nil {
				t.Fatalf("hkdfSHA256: got error %v, want nil", err)
			}
			if want := mustHex(t, tt.okm); !bytes.Equal(got, want) {
				t.Errorf("OKM: got %x, want %x", got, want)
			}
		})
	}
}

func TestDeriveVersionMaterial(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, MaterialSize)
	idA := KeyID{1}
	idB := KeyID{2}

	base, err := DeriveVersionMaterial(seed, idA, 1)
	if err != nil {
		t.Fatalf("DeriveVersionMaterial: got error %v, want nil", err)
	}
	if len(base) != MaterialSize {
		t.Fatalf("length: got %d, want %d", len(base), MaterialSize)
	}
	again, _ := DeriveVersionMaterial(seed, idA, 1)
	if !bytes.Equal(base, again) {
		t.Errorf("same inputs: got %x then %x, want equal", base, again)
	}
	// The derivation must be the documented one, not just any function.
	want, _ := hkdfSHA256(seed, nil, append(append([]byte("keyzone/v1/version"), idA[:]...), 0, 0, 0, 1), 32)
	if !bytes.Equal(base, want) {
		t.Errorf("material: got %x, want %x", base, want)
	}

	tests := []struct {
		name    string
		id      KeyID
		version uint32
	}{
		{"other key id", idB, 1},
		{"other version", idA, 2},
		{"both", idB, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveVersionMaterial(seed, tt.id, tt.version)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if bytes.Equal(got, base) {
				t.Errorf("got %x, want different from id A version 1", got)
			}
		})
	}
}

func TestDeriveVersionMaterial_Invalid(t *testing.T) {
	tests := []struct {
		name    string
		seed    []byte
		version uint32
		want    error
	}{
		{"nil seed", nil, 1, ErrMaterialSize},
		{"short seed", make([]byte, 31), 1, ErrMaterialSize},
		{"long seed", make([]byte, 33), 1, ErrMaterialSize},
		{"version 0", make([]byte, 32), 0, ErrInvalidVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DeriveVersionMaterial(tt.seed, KeyID{}, tt.version); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewVersionMaterial(t *testing.T) {
	id := KeyID{9}
	a, err := NewVersionMaterial(nil, id, 1)
	if err != nil {
		t.Fatalf("NewVersionMaterial: got error %v, want nil", err)
	}
	b, err := NewVersionMaterial(nil, id, 1)
	if err != nil {
		t.Fatalf("NewVersionMaterial: got error %v, want nil", err)
	}
	if len(a) != MaterialSize || len(b) != MaterialSize {
		t.Fatalf("lengths: got %d and %d, want %d", len(a), len(b), MaterialSize)
	}
	if bytes.Equal(a, b) {
		t.Errorf("two calls: got equal material %x, want different", a)
	}

	// With a fixed reader it is DeriveVersionMaterial of what was read.
	seed := bytes.Repeat([]byte{3}, MaterialSize)
	got, err := NewVersionMaterial(bytes.NewReader(seed), id, 4)
	if err != nil {
		t.Fatalf("NewVersionMaterial: got error %v, want nil", err)
	}
	want, _ := DeriveVersionMaterial(seed, id, 4)
	if !bytes.Equal(got, want) {
		t.Errorf("material: got %x, want %x", got, want)
	}

	if _, err := NewVersionMaterial(bytes.NewReader(seed[:10]), id, 1); err == nil {
		t.Errorf("short reader: got nil error, want one")
	}
}
