package crypto

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Envelope layout. The header is fixed-size so it can be parsed without
// length fields an attacker could play with, and it is authenticated as
// part of GCM's additional data.
const (
	// SaltSize is the per-message HKDF salt: 128 random bits make a
	// repeated (material, salt) pair, and so a repeated message key,
	// negligible across every node of every zone.
	SaltSize = 16
	// NonceSize is the standard GCM nonce length.
	NonceSize = 12
	// FormatV1 is the first envelope format. A new layout or algorithm gets
	// a new format byte; Open refuses formats it does not know.
	FormatV1 byte = 1
	// HeaderSize is format(1) | key id(16) | version(4) | salt(16) | nonce(12).
	HeaderSize = 1 + KeyIDSize + 4 + SaltSize + NonceSize // 49
	// DefaultMaxPayload is the plaintext limit when none is configured.
	// The data plane is for keys and small secrets; bulk data belongs under
	// a data key (GenerateDataKey), and the limit bounds memory per request.
	DefaultMaxPayload = 64 << 10
)

// gcmTagSize is the AES-GCM authentication tag length.
const gcmTagSize = 16

// Context tags of AssociatedData.
const (
	adNone byte = 0x00
	adMap  byte = 0x01
	adRaw  byte = 0x02
)

// Header is the clear, authenticated prefix of a ciphertext. It names the
// key and version whose material decrypts it, so decrypt needs no key id
// from the caller, and carries the per-message salt and nonce.
type Header struct {
	Format  byte
	KeyID   KeyID
	Version uint32
	Salt    [SaltSize]byte
	Nonce   [NonceSize]byte
}

// ParseHeader splits ciphertext into its header and the sealed remainder
// (GCM ciphertext and tag). sealed aliases ciphertext; it is not copied.
// A short input, an unknown format, version 0, or a sealed part shorter
// than the GCM tag is ErrDecrypt, the same error Open gives for everything
// else. It never panics, whatever the input.
func ParseHeader(ciphertext []byte) (Header, []byte, error) {
	if len(ciphertext) < HeaderSize+gcmTagSize || ciphertext[0] != FormatV1 {
		return Header{}, nil, ErrDecrypt
	}
	var h Header
	b := ciphertext
	h.Format = b[0]
	b = b[1:]
	b = b[copy(h.KeyID[:], b):]
	h.Version = binary.BigEndian.Uint32(b)
	b = b[4:]
	b = b[copy(h.Salt[:], b):]
	b = b[copy(h.Nonce[:], b):]
	if h.Version == 0 {
		return Header{}, nil, ErrDecrypt
	}
	return h, b, nil
}

// Bytes returns the HeaderSize-byte encoding that ParseHeader reads.
func (h Header) Bytes() []byte {
	return h.appendTo(make([]byte, 0, HeaderSize))
}

// appendTo appends the header encoding to b.
func (h Header) appendTo(b []byte) []byte {
	b = append(b, h.Format)
	b = append(b, h.KeyID[:]...)
	b = binary.BigEndian.AppendUint32(b, h.Version)
	b = append(b, h.Salt[:]...)
	return append(b, h.Nonce[:]...)
}

// AssociatedData returns the canonical encoding of what a ciphertext is
// bound to besides its header: the caller's organization and its
// encryption context, either a string map or raw associated data:
//
//	be16(len(org)) || org || tag
//	tag 0x00: no context
//	tag 0x01: be32(count) || for each key in byte-wise sorted order:
//	          be32(len k) || k || be32(len v) || v
//	tag 0x02: be32(len raw) || raw
//
// Every variable field is length-prefixed and the map is sorted, so the
// encoding is injective: {"a":"bc"} and {"ab":"c"}, or a map and raw bytes,
// can never collide, and map iteration order does not matter. The
// organization makes another tenant's ciphertext fail to decrypt even if it
// names a key the caller could use. An empty or nil map and empty raw both
// mean no context (JSON clients cannot tell them apart). A non-empty map
// together with non-empty raw, or an organization over 65535 bytes, is
// ErrContext. Neither argument is retained.
func AssociatedData(organization string, context map[string]string, raw []byte) ([]byte, error) {
	if len(context) > 0 && len(raw) > 0 {
		return nil, fmt.Errorf("%w: both an encryption context and associated data", ErrContext)
	}
	if len(organization) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: organization name too long", ErrContext)
	}
	n := 2 + len(organization) + 1
	switch {
	case len(context) > 0:
		n += 4
		for k, v := range context {
			n += 8 + len(k) + len(v)
		}
	case len(raw) > 0:
		n += 4 + len(raw)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(organization)))
	b = append(b, organization...)
	switch {
	case len(context) > 0:
		keys := make([]string, 0, len(context))
		for k, v := range context {
			if uint64(len(k)) > math.MaxUint32 || uint64(len(v)) > math.MaxUint32 {
				return nil, fmt.Errorf("%w: entry too long", ErrContext)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, adMap)
		b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
		for _, k := range keys {
			b = appendLV32(b, k)
			b = appendLV32(b, context[k])
		}
	case len(raw) > 0:
		if uint64(len(raw)) > math.MaxUint32 {
			return nil, fmt.Errorf("%w: associated data too long", ErrContext)
		}
		b = append(b, adRaw)
		b = appendLV32(b, raw)
	default:
		b = append(b, adNone)
	}
	return b, nil
}

// appendLV32 appends be32(len(s)) || s.
func appendLV32[T string | []byte](b []byte, s T) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
