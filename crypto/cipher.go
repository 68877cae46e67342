package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
)

// Cipher seals and opens data-plane ciphertexts. Each message gets its own
// AES-256-GCM key,
//
//	msgKey = HKDF-SHA256(secret=material, salt=16 random bytes,
//	                     info="keyzone/v1/message" || id || be32(version))
//
// because every node of every zone encrypts under the same version material
// with no shared counter: random 96-bit nonces under one key would hit the
// NIST SP 800-38D limit of 2^32 messages, while a fresh key per message
// makes nonce reuse irrelevant. GCM's additional data is the header bytes
// followed by the caller's ad (see AssociatedData), and the output is
// header || sealed.
//
// The zero value is usable: a nil Rand means crypto/rand.Reader and a
// MaxPayload <= 0 means DefaultMaxPayload. A Cipher is safe for concurrent
// use if Rand is; it holds no key material.
type Cipher struct {
	// Rand supplies salts, nonces and data keys. Tests may set a
	// deterministic reader; production leaves it nil or crypto/rand.Reader.
	Rand io.Reader
	// MaxPayload bounds plaintexts accepted by Seal and, plus the
	// envelope overhead, ciphertexts accepted by Open.
	MaxPayload int
}

// NewCipher returns a Cipher reading crypto/rand.Reader with the given
// plaintext limit (<= 0 means DefaultMaxPayload).
func NewCipher(maxPayload int) *Cipher {
	return &Cipher{Rand: randOrDefault(nil), MaxPayload: maxPayload}
}

// maxPayload returns the effective plaintext limit.
func (c *Cipher) maxPayload() int {
	if c.MaxPayload <= 0 {
		return DefaultMaxPayload
	}
	return c.MaxPayload
}

// Seal encrypts plaintext under the version material of key id, version and
// binds it to ad (normally AssociatedData's output; nil is allowed). It
// refuses a plaintext over MaxPayload (ErrPayloadTooLarge), material that is
// not 32 bytes (ErrMaterialSize) and version 0 (ErrInvalidVersion, which no
// Open would accept). No argument is retained; the result is a new slice.
func (c *Cipher) Seal(material []byte, id KeyID, version uint32, plaintext, ad []byte) ([]byte, error) {
	if len(plaintext) > c.maxPayload() {
		return nil, ErrPayloadTooLarge
	}
	if len(material) != MaterialSize {
		return nil, ErrMaterialSize
	}
	if version == 0 {
		return nil, ErrInvalidVersion
	}
	h := Header{Format: FormatV1, KeyID: id, Version: version}
	var fresh [SaltSize + NonceSize]byte
	if _, err := io.ReadFull(randOrDefault(c.Rand), fresh[:]); err != nil {
		return nil, fmt.Errorf("crypto: seal: %w", err)
	}
	copy(h.Salt[:], fresh[:SaltSize])
	copy(h.Nonce[:], fresh[SaltSize:])
	aead, err := messageAEAD(material, h)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal: %w", err)
	}
	out := h.appendTo(make([]byte, 0, HeaderSize+len(plaintext)+gcmTagSize))
	return aead.Seal(out, h.Nonce[:], plaintext, gcmAD(out, ad)), nil
}

// Open decrypts a ciphertext made by Seal. material must be the version
// material of the key id and version named by the ciphertext's own header:
// the caller looks it up with ParseHeader first, and Open derives the
// message key from that header, so a header rewritten to name another key
// or version fails authentication. A ciphertext longer than
// HeaderSize+MaxPayload+16 is ErrPayloadTooLarge (sizes are public); every
// other failure, whatever its cause, is ErrDecrypt. The plaintext is a new
// slice, non-nil even when empty (so it encodes as "" rather than null).
func (c *Cipher) Open(material []byte, ciphertext, ad []byte) ([]byte, error) {
	if len(ciphertext) > HeaderSize+gcmTagSize &&
		len(ciphertext)-HeaderSize-gcmTagSize > c.maxPayload() {
		return nil, ErrPayloadTooLarge
	}
	if len(material) != MaterialSize {
		return nil, ErrDecrypt
	}
	h, sealed, err := ParseHeader(ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	aead, err := messageAEAD(material, h)
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, h.Nonce[:], sealed, gcmAD(ciphertext[:HeaderSize], ad))
	if err != nil {
		return nil, ErrDecrypt
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// GenerateDataKey returns bits/8 random bytes from Rand for envelope
// encryption by the client: 128 or 256 bits, 0 meaning 256; anything else
// is ErrDataKeySize. The caller seals the result with Seal to return its
// wrapped form.
func (c *Cipher) GenerateDataKey(bits int) ([]byte, error) {
	switch bits {
	case 0:
		bits = 256
	case 128, 256:
	default:
		return nil, ErrDataKeySize
	}
	k := make([]byte, bits/8)
	if _, err := io.ReadFull(randOrDefault(c.Rand), k); err != nil {
		return nil, fmt.Errorf("crypto: generate data key: %w", err)
	}
	return k, nil
}

// messageAEAD derives the one-message AES-256-GCM instance for header h.
// The derived key is wiped once the cipher is keyed (best effort: Go may
// have copied it).
func messageAEAD(material []byte, h Header) (cipher.AEAD, error) {
	var info [len(labelMessage) + KeyIDSize + 4]byte
	copy(info[:], labelMessage)
	copy(info[len(labelMessage):], h.KeyID[:])
	binary.BigEndian.PutUint32(info[len(labelMessage)+KeyIDSize:], h.Version)
	if !hkdfBlockFits(material, h.Salt[:], info[:]) {
		return nil, ErrMaterialSize
	}
	key := hkdfBlock(material, h.Salt[:], info[:])
	defer clear(key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// gcmAD returns header || ad, the GCM additional data of a message.
func gcmAD(header, ad []byte) []byte {
	b := make([]byte, 0, len(header)+len(ad))
	b = append(b, header...)
	return append(b, ad...)
}
