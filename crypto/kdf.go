package crypto

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// MaterialSize is the length of version material, of the REK and of every
// derived AES-256 key.
const MaterialSize = 32

// Domain-separation labels. Each derivation and each wrap uses its own
// label so that no output of one can be replayed as the input of another;
// "v1" lets a future format change labels without ambiguity.
const (
	labelVersion = "keyzone/v1/version"
	labelMessage = "keyzone/v1/message"
	labelWrap    = "keyzone/v1/wrap"
	// labelWrapImport wraps the private key of a key's import parameters.
	labelWrapImport = "keyzone/v1/wrap-import-key"
	labelREKID      = "keyzone/v1/rek-id"
)

// hkdfSHA256 is the package's single HKDF call path (RFC 5869 with
// SHA-256), so the RFC test vectors exercise exactly what production uses.
// Outputs of one hash block with short inputs, which is every derivation
// of the package, take hkdfBlock; the rest crypto/hkdf.
func hkdfSHA256(secret, salt, info []byte, n int) ([]byte, error) {
	if n > 0 && n <= sha256.Size && hkdfBlockFits(secret, salt, info) {
		okm := hkdfBlock(secret, salt, info)
		out := make([]byte, n)
		copy(out, okm[:])
		clear(okm[:])
		return out, nil
	}
	return hkdf.Key(sha256.New, secret, salt, string(info), n)
}

// hmacMaxMessage bounds the messages hmacSHA256 takes, so that its
// buffer fits on the stack.
const hmacMaxMessage = 128

// hkdfBlockFits reports whether hkdfBlock can take these inputs: a salt
// no longer than a SHA-256 block (HMAC would hash a longer key first),
// and a secret and info that fit hmacSHA256's buffer.
func hkdfBlockFits(secret, salt, info []byte) bool {
	return len(salt) <= sha256.BlockSize && len(secret) <= hmacMaxMessage && len(info) < hmacMaxMessage
}

// hkdfBlock is HKDF-SHA256 (RFC 5869) for 32 bytes of output, which is
// T(1) of HKDF-Expand, the first block of any longer output:
//
//	PRK = HMAC(salt, secret); OKM = HMAC(PRK, info || 0x01)
//
// It exists because the data plane derives a key per message: crypto/hkdf
// allocates two HMAC states and a PRK each call, which at one derivation
// per request is a measurable share of the server's CPU and garbage,
// while this uses the stack only and clears it. The caller checks
// hkdfBlockFits; the tests compare it with crypto/hkdf and the RFC's
// vectors.
func hkdfBlock(secret, salt, info []byte) [sha256.Size]byte {
	prk := hmacSHA256(salt, secret, nil)
	okm := hmacSHA256(prk[:], info, []byte{1})
	clear(prk[:])
	return okm
}

// hmacSHA256 is HMAC-SHA256 (RFC 2104) of a || b under key, which is at
// most one block long (and zero-padded to it, as RFC 2104 says; a nil key
// is all zeros), with len(a)+len(b) <= hmacMaxMessage. Working buffers
// are cleared before it returns.
func hmacSHA256(key, a, b []byte) [sha256.Size]byte {
	const (
		ipad = 0x36
		opad = 0x5c
	)
	var buf [sha256.BlockSize + hmacMaxMessage]byte
	for i := range sha256.BlockSize {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		buf[i] = k ^ ipad
	}
	n := sha256.BlockSize
	n += copy(buf[n:], a)
	n += copy(buf[n:], b)
	inner := sha256.Sum256(buf[:n])
	for i := range sha256.BlockSize {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		buf[i] = k ^ opad
	}
	copy(buf[sha256.BlockSize:], inner[:])
	out := sha256.Sum256(buf[:sha256.BlockSize+sha256.Size])
	clear(buf[:])
	clear(inner[:])
	return out
}

// bindInfo returns label || id || be32(version): the context every
// derivation and wrap binds, fixed-length after the label so it is
// unambiguous.
func bindInfo(label string, id KeyID, version uint32) []byte {
	b := make([]byte, 0, len(label)+KeyIDSize+4)
	b = append(b, label...)
	b = append(b, id[:]...)
	return binary.BigEndian.AppendUint32(b, version)
}

// DeriveVersionMaterial expands a 32-byte seed into the version material of
// key id, version: HKDF-SHA256(secret=seed, salt=nil,
// info="keyzone/v1/version" || id || be32(version)), 32 bytes. Binding id
// and version means a seed reused by mistake still yields unrelated
// material for each version. It is deterministic; seed is not retained.
// A seed of the wrong length is ErrMaterialSize, version 0 is
// ErrInvalidVersion.
func DeriveVersionMaterial(seed []byte, id KeyID, version uint32) ([]byte, error) {
	if len(seed) != MaterialSize {
		return nil, ErrMaterialSize
	}
	if version == 0 {
		return nil, ErrInvalidVersion
	}
	m, err := hkdfSHA256(seed, nil, bindInfo(labelVersion, id, version), MaterialSize)
	if err != nil {
		return nil, fmt.Errorf("crypto: derive version material: %w", err)
	}
	return m, nil
}

// NewVersionMaterial reads a fresh 32-byte seed from r (nil means
// crypto/rand.Reader) and derives the material of id, version from it. The
// proposer calls it, wraps the result and puts only the wrapped form in the
// command.
func NewVersionMaterial(r io.Reader, id KeyID, version uint32) ([]byte, error) {
	seed := make([]byte, MaterialSize)
	defer clear(seed)
	if _, err := io.ReadFull(randOrDefault(r), seed); err != nil {
		return nil, fmt.Errorf("crypto: new version material: %w", err)
	}
	return DeriveVersionMaterial(seed, id, version)
}

// randOrDefault lets a nil io.Reader mean crypto/rand.Reader everywhere, so
// a zero Cipher or a nil argument is safe rather than a panic.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
