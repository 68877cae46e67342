package client

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"fmt"
	"net/http"

	"github.com/keyzone/keyzone/api/wire"
)

// ImportAlgorithm is the only import-parameters algorithm: HPKE (RFC
// 9180) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM.
const ImportAlgorithm = "HPKE-DHKEM-X25519-HKDF-SHA256-AES-256-GCM"

// ImportParameters draws new import parameters for a key of origin
// external (GET /v1/keys/{id}/import-parameters). They replace the key's
// previous ones; the token in them is shown only this once.
func (c *Client) ImportParameters(ctx context.Context, id string, opts ...CallOption) (wire.ImportParameters, error) {
	var out wire.ImportParameters
	p, err := keyPath(id, "import-parameters")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &out, opts)
	return out, err
}

// ImportKeyMaterial sends sealed (or, to a server that accepts it over
// TLS, raw) material (POST /v1/keys/{id}/import) and returns the key with
// its new version.
func (c *Client) ImportKeyMaterial(ctx context.Context, id string, req wire.ImportKeyMaterialRequest, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "import", req, opts)
}

// SealKeyMaterial seals material to import parameters, on the caller's
// side: only the sealed form crosses the network.
func SealKeyMaterial(p wire.ImportParameters, material []byte) ([]byte, error) {
	if p.Algorithm != ImportAlgorithm {
		return nil, fmt.Errorf("keyzone: import parameters of algorithm %q, want %s", p.Algorithm, ImportAlgorithm)
	}
	if len(p.HPKEInfo) == 0 {
		return nil, errors.New("keyzone: import parameters without hpke_info")
	}
	pub, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(p.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("keyzone: import public key: %w", err)
	}
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), p.HPKEInfo, material)
	if err != nil {
		return nil, fmt.Errorf("keyzone: seal key material: %w", err)
	}
	return sealed, nil
}

// ImportMaterial imports material into a key of origin external the
// safe way: it gets fresh import parameters, seals the material to them
// here and sends the sealed form with the token.
func (c *Client) ImportMaterial(ctx context.Context, id string, material []byte, opts ...CallOption) (wire.Key, error) {
	p, err := c.ImportParameters(ctx, id, opts...)
	if err != nil {
		return wire.Key{}, err
	}
	sealed, err := SealKeyMaterial(p, material)
	if err != nil {
		return wire.Key{}, err
	}
	return c.ImportKeyMaterial(ctx, id, wire.ImportKeyMaterialRequest{ImportToken: p.ImportToken, EncryptedMaterial: sealed}, opts...)
}

// ErrRawImportNeedsTLS: ImportRawMaterial was asked to send raw material
// to an http address, where it would cross the network in clear.
var ErrRawImportNeedsTLS = errors.New("keyzone: raw key material is sent only to an https address; use ImportMaterial, which seals it to the key's import parameters first")

// ImportRawMaterial sends material unsealed (key_material), to a server
// started with --allow-raw-import, over TLS. It refuses, sending nothing,
// when the Client's address is not https; the server refuses a raw import
// that did not come over TLS, or that it is not configured to accept
// (403 raw_import_refused). ImportMaterial is the safer way: the material
// is sealed on this side, so it never depends on the transport.
func (c *Client) ImportRawMaterial(ctx context.Context, id string, material []byte, opts ...CallOption) (wire.Key, error) {
	if c.base.Scheme != "https" {
		return wire.Key{}, fmt.Errorf("%w (the address is %s)", ErrRawImportNeedsTLS, c.base.Redacted())
	}
	return c.ImportKeyMaterial(ctx, id, wire.ImportKeyMaterialRequest{KeyMaterial: material}, opts...)
}
