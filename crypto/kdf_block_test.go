package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestHKDFBlock_RFC5869 checks hkdfBlock against the first 32 bytes of
// the RFC 5869 SHA-256 vectors (an HKDF output's first block is the same
// whatever the length asked for). A.2's 80-byte salt is longer than a
// block: hkdfBlock does not take it, and hkdfSHA256 hands it to crypto/hkdf.
func TestHKDFBlock_RFC5869(t *testing.T) {
	a1 := mustHex(t, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")
	if got := hkdfBlock(bytes.Repeat([]byte{0x0b}, 22), byteRange(0x00, 0x0d), byteRange(0xf0, 0xfa)); !bytes.Equal(got[:], a1) {
		t.Errorf("A.1: got %x, want %x", got, a1)
	}
	a3 := mustHex(t, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
	if got := hkdfBlock(bytes.Repeat([]byte{0x0b}, 22), nil, nil); !bytes.Equal(got[:], a3) {
		t.Errorf("A.3: got %x, want %x", got, a3)
	}
	if hkdfBlockFits(byteRange(0x00, 0x50), byteRange(0x60, 0xb0), byteRange(0xb0, 0x100)) {
		t.Error("hkdfBlockFits takes A.2's 80-byte salt")
	}
}

// TestHKDFBlock_MatchesStdlib compares hkdfBlock and hkdfSHA256 with
// crypto/hkdf over inputs of every length up to their bounds.
func TestHKDFBlock_MatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for i := range 2000 {
		secret := bytesOf(r.IntN(hmacMaxMessage + 1))
		salt := bytesOf(r.IntN(sha256.BlockSize + 1))
		info := bytesOf(r.IntN(hmacMaxMessage))
		if i%7 == 0 {
			salt = nil
		}
		if !hkdfBlockFits(secret, salt, info) {
			t.Fatalf("inputs of %d, %d, %d bytes do not fit", len(secret), len(salt), len(info))
		}
		want, err := hkdf.Key(sha256.New, secret, salt, string(info), sha256.Size)
		if err != nil {
			t.Fatal(err)
		}
		if got := hkdfBlock(secret, salt, info); !bytes.Equal(got[:], want) {
			t.Fatalf("secret %x salt %x info %x: got %x, want %x", secret, salt, info, got, want)
		}
		n := 1 + r.IntN(sha256.Size)
		got, err := hkdfSHA256(secret, salt, info, n)
		if err != nil || !bytes.Equal(got, want[:n]) {
			t.Fatalf("hkdfSHA256(%d bytes): got %x, %v, want %x", n, got, err, want[:n])
		}
	}
}

// TestMessageAEAD_Derivation pins the message key to its definition:
// HKDF-SHA256(material, salt, "keyzone/v1/message" || id || be32(version)).
func TestMessageAEAD_Derivation(t *testing.T) {
	material := bytes.Repeat([]byte{0x42}, MaterialSize)
	h := Header{Format: FormatV1, KeyID: KeyID{1, 2, 3}, Version: 7}
	copy(h.Salt[:], bytes.Repeat([]byte{9}, SaltSize))
	key, err := hkdf.Key(sha256.New, material, h.Salt[:], string(bindInfo(labelMessage, h.KeyID, h.Version)), MaterialSize)
	if err != nil {
		t.Fatal(err)
	}
	want, err := aeadOf(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := messageAEAD(material, h)
	if err != nil {
		t.Fatal(err)
	}
	pt, ad := []byte("the plaintext"), []byte("ad")
	if a, b := got.Seal(nil, h.Nonce[:], pt, ad), want.Seal(nil, h.Nonce[:], pt, ad); !bytes.Equal(a, b) {
		t.Errorf("sealed under the derived key: got %x, want %x", a, b)
	}
}

func aeadOf(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
