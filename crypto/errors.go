package crypto

import "errors"

// Sentinel errors. Messages are static and never carry key material,
// plaintext or ciphertext; match them with errors.Is.
var (
	// ErrDecrypt is the only error Open returns for a short, malformed,
	// tampered or mismatched ciphertext (wrong material, context or
	// organization). It is deliberately uninformative: distinguishing the
	// causes would give an attacker a decryption oracle.
	ErrDecrypt = errors.New("crypto: decryption failed")

	// ErrPayloadTooLarge reports a plaintext above the Cipher's MaxPayload,
	// or a ciphertext that could only have come from one. Sizes are public,
	// so this is not an oracle; it maps to HTTP 413.
	ErrPayloadTooLarge = errors.New("crypto: payload too large")

	// ErrInvalidKeyID reports a key id that is not canonical lowercase
	// UUID text.
	ErrInvalidKeyID = errors.New("crypto: invalid key id")

	// ErrInvalidREK reports a root encrypting key that is not exactly
	// 32 bytes (or not standard base64). Wrapping errors add the reason,
	// never the key.
	ErrInvalidREK = errors.New("crypto: invalid root encrypting key")

	// ErrUnwrap is the only error Unwrap returns: the blob is corrupt, or
	// was wrapped under another REK, key id or version.
	ErrUnwrap = errors.New("crypto: unwrap failed")

	// ErrDataKeySize reports a data key size other than 128 or 256 bits.
	ErrDataKeySize = errors.New("crypto: data key size must be 128 or 256 bits")

	// ErrContext reports associated data that cannot be encoded: both an
	// encryption context map and raw associated data, or an organization
	// name too long for its 16-bit length prefix.
	ErrContext = errors.New("crypto: invalid encryption context")

	// ErrMaterialSize reports a seed or version material that is not
	// MaterialSize bytes. (Open reports this case as ErrDecrypt instead.)
	ErrMaterialSize = errors.New("crypto: key material must be 32 bytes")

	// ErrInvalidVersion reports key version 0. Versions are numbered from
	// 1, and ParseHeader refuses version 0, so sealing or deriving under it
	// would produce something that can never be used.
	ErrInvalidVersion = errors.New("crypto: key version must be at least 1")
)
