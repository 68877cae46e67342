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
	labelREKID   = "keyzone/v1/rek-id"
)

// hkdfSHA256 is the package's single HKDF call path (RFC 5869 with
// SHA-256), so the RFC test vectors exercise exactly what production uses.
func hkdfSHA256(secret, salt, info []byte, n int) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, salt, string(info), n)
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
