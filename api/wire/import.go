package wire

import "time"

// ImportParameters answers GET /v1/keys/{id}/import-parameters: what a
// caller needs to seal key material for a key of origin external. Seal
// the material (16 to 64 bytes) with HPKE (RFC 9180) mode base, suite
// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, to PublicKey
// with HPKEInfo as info and no additional data, and send the
// concatenation enc || ciphertext as ImportKeyMaterialRequest's
// EncryptedMaterial with ImportToken. HPKEInfo is
// "keyzone/v1/import" 0x00 key id 0x00 token id. The token is shown once,
// imports one version, and expires at ExpiresAt.
type ImportParameters struct {
	KeyID       string    `json:"key_id"`
	Algorithm   string    `json:"algorithm"`
	PublicKey   []byte    `json:"public_key"` // X25519, 32 bytes
	HPKEInfo    []byte    `json:"hpke_info"`
	ImportToken string    `json:"import_token"`
	TokenID     string    `json:"token_id"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// ImportKeyMaterialRequest is the body of POST /v1/keys/{id}/import:
// EncryptedMaterial with ImportToken, or KeyMaterial (the raw material)
// when the server accepts raw imports (over TLS only). It answers the Key.
type ImportKeyMaterialRequest struct {
	ImportToken       string `json:"import_token,omitempty"`
	EncryptedMaterial []byte `json:"encrypted_material,omitempty"`
	KeyMaterial       []byte `json:"key_material,omitempty"`
}

// Error codes of imports.
const (
	CodeOriginNotExternal  = "origin_not_external"  // the key's material is Keyzone's own
	CodeImportTokenInvalid = "import_token_invalid" // not the key's current import token
	CodeImportTokenExpired = "import_token_expired" // get new import parameters
	CodeImportTokenUsed    = "import_token_used"    // each import needs new import parameters
	CodeImportUnseal       = "import_unseal_failed" // not sealed to the key's current public key
	CodeRawImportRefused   = "raw_import_refused"   // raw material needs TLS and --allow-raw-import
)
