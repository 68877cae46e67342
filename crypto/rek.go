package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// wrappedSize is the only valid length of a wrapped version material:
// nonce || AES-GCM(material) || tag.
const wrappedSize = NonceSize + MaterialSize + gcmTagSize

// REK is the root encrypting key: the per-node secret (the same on every
// node of a deployment) under which version material is wrapped at rest,
// so Raft logs, snapshots and replication carry no usable key material. It
// holds only the AES-256-GCM instance and the public fingerprint, never the
// raw bytes, so printing a *REK reveals nothing. It is safe for concurrent
// use.
type REK struct {
	aead   cipher.AEAD
	id     string
	peer   string
	gossip []byte
}

// NewREK builds a REK from exactly 32 raw bytes (else ErrInvalidREK). raw
// is not retained; the caller may wipe it afterwards.
func NewREK(raw []byte) (*REK, error) {
	if len(raw) != MaterialSize {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrInvalidREK, len(raw), MaterialSize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidREK, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidREK, err)
	}
	return &REK{aead: aead, id: hex.EncodeToString(derive(raw, labelREKID)[:8]), peer: hex.EncodeToString(derive(raw, labelPeerToken)),
		gossip: derive(raw, labelGossipKey)}, nil
}

// Labels of the secrets derived from the REK.
const (
	labelPeerToken = "keyzone/v1/peer-token"
	labelGossipKey = "keyzone/v1/gossip-key"
)

func derive(raw []byte, label string) []byte {
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(label))
	return mac.Sum(nil)
}

// PeerToken is the bearer token nodes present to each other (forwarded
// proposals, read indexes, change-log pulls): HMAC-SHA256(key=raw REK,
// "keyzone/v1/peer-token") in hex. Every node of every zone holds the
// same REK, so they agree on it without another secret to distribute,
// while an API caller, who never sees the REK, can't forge node-to-node
// calls. It is a secret: never log it.
func (r *REK) PeerToken() string { return r.peer }

// GossipKey is the 32-byte key the gossip pool encrypts and authenticates
// its messages with: HMAC-SHA256(key=raw REK, "keyzone/v1/gossip-key").
// Only nodes given the REK can join the pool or advertise addresses in it,
// so node-to-node tokens never go to an address a stranger advertised.
// It is a secret: never log it. The caller must not modify it.
func (r *REK) GossipKey() []byte { return r.gossip }

// ParseREK decodes the REK from standard (padded) base64, as read from a
// flag, environment variable or file; surrounding whitespace such as a
// trailing newline is ignored. Errors say what is wrong (encoding or
// length) but never echo the input.
func ParseREK(b64 string) (*REK, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("%w: not standard base64", ErrInvalidREK)
	}
	defer clear(raw)
	return NewREK(raw)
}

// ID is the REK's public fingerprint: 16 hex characters, the first 8 bytes
// of HMAC-SHA256(key=raw REK, "keyzone/v1/rek-id"). It is stored next to
// every wrapped version (fsm.Version.RekID) so a node started with another
// REK can refuse to start with a clear error instead of failing every
// unwrap; being a keyed MAC, it reveals nothing about the REK.
func (r *REK) ID() string { return r.id }

// Wrap seals 32 bytes of version material for key id, version under the
// REK. The result is nonce(12) || AES-256-GCM seal, with additional data
// "keyzone/v1/wrap" || id || be32(version) || r.ID(), so a wrapped blob
// moved to another key, version or REK fails to unwrap. The nonce comes
// from rnd (nil means crypto/rand.Reader): wraps happen once per key
// version, far below the random-nonce bound. material is not retained.
func (r *REK) Wrap(rnd io.Reader, id KeyID, version uint32, material []byte) ([]byte, error) {
	if len(material) != MaterialSize {
		return nil, ErrMaterialSize
	}
	if version == 0 {
		return nil, ErrInvalidVersion
	}
	out := make([]byte, NonceSize, wrappedSize)
	if _, err := io.ReadFull(randOrDefault(rnd), out); err != nil {
		return nil, fmt.Errorf("crypto: wrap: %w", err)
	}
	return r.aead.Seal(out, out[:NonceSize], material, r.wrapAD(labelWrap, id, version)), nil
}

// WrapImportKey seals the 32-byte seed of a key's import private key (BYOK)
// under the REK, like Wrap but under its own label, so that a wrapped
// import key and wrapped version material can never be taken for each
// other.
func (r *REK) WrapImportKey(rnd io.Reader, id KeyID, seed []byte) ([]byte, error) {
	if len(seed) != MaterialSize {
		return nil, ErrMaterialSize
	}
	out := make([]byte, NonceSize, wrappedSize)
	if _, err := io.ReadFull(randOrDefault(rnd), out); err != nil {
		return nil, fmt.Errorf("crypto: wrap: %w", err)
	}
	return r.aead.Seal(out, out[:NonceSize], seed, r.wrapAD(labelWrapImport, id, 0)), nil
}

// UnwrapImportKey reverses WrapImportKey; every failure is ErrUnwrap.
func (r *REK) UnwrapImportKey(id KeyID, wrapped []byte) ([]byte, error) {
	if len(wrapped) != wrappedSize {
		return nil, ErrUnwrap
	}
	m, err := r.aead.Open(nil, wrapped[:NonceSize], wrapped[NonceSize:], r.wrapAD(labelWrapImport, id, 0))
	if err != nil {
		return nil, ErrUnwrap
	}
	return m, nil
}

// Unwrap reverses Wrap for the same key id and version. Every failure
// (wrong length, wrong REK, key id or version, corruption) is ErrUnwrap.
// The returned material is a fresh slice the caller owns.
func (r *REK) Unwrap(id KeyID, version uint32, wrapped []byte) ([]byte, error) {
	if len(wrapped) != wrappedSize || version == 0 {
		return nil, ErrUnwrap
	}
	m, err := r.aead.Open(nil, wrapped[:NonceSize], wrapped[NonceSize:], r.wrapAD(labelWrap, id, version))
	if err != nil {
		return nil, ErrUnwrap
	}
	return m, nil
}

// wrapAD is the GCM additional data of a wrap.
func (r *REK) wrapAD(label string, id KeyID, version uint32) []byte {
	ad := make([]byte, 0, len(label)+KeyIDSize+4+len(r.id))
	ad = append(ad, label...)
	ad = append(ad, id[:]...)
	ad = binary.BigEndian.AppendUint32(ad, version)
	return append(ad, r.id...)
}
