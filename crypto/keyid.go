package crypto

import (
	"encoding/hex"
	"fmt"
	"io"
)

// KeyIDSize is the length of a KeyID in bytes; it is also its length in the
// ciphertext header.
const KeyIDSize = 16

// KeyID identifies a key. It is a random UUID (version 4) so ids chosen by
// different proposers never collide, and its 16 raw bytes go into the
// ciphertext header and into every HKDF info string, binding material and
// ciphertexts to the key. Its text form is the canonical lowercase UUID.
type KeyID [KeyIDSize]byte

// NewKeyID reads 16 bytes from r and sets the UUID version (4) and variant
// (RFC 9562) bits. The proposer calls it and puts the result in the
// command, since Apply must not draw randomness.
func NewKeyID(r io.Reader) (KeyID, error) {
	var id KeyID
	if _, err := io.ReadFull(randOrDefault(r), id[:]); err != nil {
		return KeyID{}, fmt.Errorf("crypto: new key id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // variant 10xx
	return id, nil
}

// ParseKeyID accepts only the canonical form String produces: 36 characters,
// lowercase hex, dashes at positions 8, 13, 18 and 23. Anything else
// (uppercase, braces, "urn:uuid:", missing dashes) is ErrInvalidKeyID, so a
// key has exactly one spelling in URLs, state and logs. The version and
// variant bits are not checked: the id is an opaque name once issued.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	if len(s) != 36 {
		return KeyID{}, ErrInvalidKeyID
	}
	j := 0
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return KeyID{}, ErrInvalidKeyID
			}
			continue
		}
		hi, ok1 := lowerHexValue(s[i])
		lo, ok2 := lowerHexValue(s[i+1])
		if !ok1 || !ok2 {
			return KeyID{}, ErrInvalidKeyID
		}
		id[j] = hi<<4 | lo
		j++
		i++
	}
	return id, nil
}

// lowerHexValue decodes one lowercase hex digit.
func lowerHexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// String returns the canonical lowercase UUID text, the only form ParseKeyID
// accepts.
func (id KeyID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], id[10:16])
	return string(b[:])
}
