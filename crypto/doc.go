// Package crypto is Keyzone's cryptographic core: key identifiers, version
// material derivation, wrapping of version material under the root
// encrypting key (REK), and the versioned AES-256-GCM ciphertext envelope of
// the data plane. Other packages import it as kzcrypto so it does not shadow
// the standard library's crypto.
//
// It imports no project package and only the standard library, so the
// primitives can be reviewed on their own. Everything non-deterministic
// (salts, nonces, key ids, material) is read from an io.Reader chosen by the
// caller, which lets the proposer of a Raft command decide it once and lets
// tests be reproducible.
//
// # Keys
//
// A key version is 32 bytes of version material: 32 random seed bytes
// expanded with HKDF-SHA256 (RFC 5869) under an info string that binds the
// key id and version number, so the same seed can never serve two versions.
// At rest the material is only ever held wrapped under the REK with
// AES-256-GCM, whose additional data binds the key id, version and REK id;
// a wrapped blob copied onto another version, key or REK does not unwrap.
//
// # Envelope
//
// Every node of every zone encrypts under the same version material, so no
// shared counter could keep random 96-bit GCM nonces under the 2^32
// invocation bound of NIST SP 800-38D. Each Seal therefore draws a fresh
// 16-byte salt and derives a one-message key with HKDF-SHA256 before sealing
// with a random 12-byte nonce. The ciphertext is
//
//	format(1) | key id(16) | version(4, big-endian) | salt(16) | nonce(12) | sealed
//
// and the header bytes plus the canonical associated data (organization and
// encryption context, see AssociatedData) are GCM's additional data, so a
// ciphertext cannot be moved to another key, version, organization or
// context. Decryption needs only the ciphertext, the version material named
// by its header, and the same context.
//
// # Errors
//
// Open returns the single sentinel ErrDecrypt for every malformed,
// truncated, tampered or mismatched input, so callers cannot become an
// oracle for which part was wrong. No error message of this package
// contains key material or plaintext.
package crypto
