package client

import (
	"context"
	"net/http"

	"github.com/keyzone/keyzone/api/wire"
)

// Encrypt encrypts req.Plaintext under the current version of keyID.
func (c *Client) Encrypt(ctx context.Context, keyID string, req wire.EncryptRequest, opts ...CallOption) (wire.EncryptResponse, error) {
	var out wire.EncryptResponse
	err := c.keyCrypto(ctx, keyID, "encrypt", req, &out, opts)
	return out, err
}

// Decrypt decrypts a ciphertext under the key it names (POST /v1/decrypt).
// Every wrong ciphertext or context fails the same way: an *Error with
// code decrypt_failed.
func (c *Client) Decrypt(ctx context.Context, req wire.DecryptRequest, opts ...CallOption) (wire.DecryptResponse, error) {
	var out wire.DecryptResponse
	err := c.do(ctx, http.MethodPost, "/v1/decrypt", nil, req, &out, opts)
	return out, err
}

// DecryptWithKey is Decrypt that also requires the ciphertext to be
// keyID's.
func (c *Client) DecryptWithKey(ctx context.Context, keyID string, req wire.DecryptRequest, opts ...CallOption) (wire.DecryptResponse, error) {
	var out wire.DecryptResponse
	err := c.keyCrypto(ctx, keyID, "decrypt", req, &out, opts)
	return out, err
}

// GenerateDataKey returns a fresh data key wrapped under keyID and, unless
// req.WithoutPlaintext, in plaintext.
func (c *Client) GenerateDataKey(ctx context.Context, keyID string, req wire.GenerateDataKeyRequest, opts ...CallOption) (wire.GenerateDataKeyResponse, error) {
	var out wire.GenerateDataKeyResponse
	err := c.keyCrypto(ctx, keyID, "generate-data-key", req, &out, opts)
	return out, err
}

// ReEncrypt decrypts a ciphertext and encrypts its plaintext again under
// req.DestinationKeyID (or the current version of its own key) on the
// server, which never returns the plaintext (POST /v1/re-encrypt).
func (c *Client) ReEncrypt(ctx context.Context, req wire.ReEncryptRequest, opts ...CallOption) (wire.ReEncryptResponse, error) {
	var out wire.ReEncryptResponse
	err := c.do(ctx, http.MethodPost, "/v1/re-encrypt", nil, req, &out, opts)
	return out, err
}

// ReEncryptWithKey is ReEncrypt that also requires the ciphertext to be
// keyID's.
func (c *Client) ReEncryptWithKey(ctx context.Context, keyID string, req wire.ReEncryptRequest, opts ...CallOption) (wire.ReEncryptResponse, error) {
	var out wire.ReEncryptResponse
	err := c.keyCrypto(ctx, keyID, "re-encrypt", req, &out, opts)
	return out, err
}

func (c *Client) keyCrypto(ctx context.Context, keyID, op string, in, out any, opts []CallOption) error {
	p, err := keyPath(keyID, op)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, p, nil, in, out, opts)
}
