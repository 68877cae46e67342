package api

import (
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
)

func (s *server) encrypt(c *gin.Context) {
	var req wire.EncryptRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	if len(req.Plaintext) > s.maxPayload {
		c.Error(fmt.Errorf("plaintext is %d bytes, the limit is %d: %w", len(req.Plaintext), s.maxPayload, kzcrypto.ErrPayloadTooLarge))
		return
	}
	res, err := s.keys.Encrypt(c.Request.Context(), keys.EncryptParams{
		Organization: org(c),
		Allow:        allow(c),
		KeyID:        c.Param("id"),
		Plaintext:    req.Plaintext,
		Context:      cryptoContext(req.EncryptionContext, req.AssociatedData),
	})
	if err != nil {
		c.Error(err)
		return
	}
	auditKey(c, res.KeyID, res.KeyVersion)
	respondJSON(c, wire.EncryptResponse{KeyID: res.KeyID, KeyVersion: res.KeyVersion, Ciphertext: res.Ciphertext}, appendEncryptResponse)
}

// decrypt serves POST /v1/decrypt (the key named by the ciphertext) and
// POST /v1/keys/{id}/decrypt (which also checks the ciphertext is that key's).
func (s *server) decrypt(c *gin.Context) {
	var req wire.DecryptRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	res, err := s.keys.Decrypt(c.Request.Context(), keys.DecryptParams{
		Organization: org(c),
		Allow:        allow(c),
		KeyID:        c.Param("id"),
		Ciphertext:   req.Ciphertext,
		Context:      cryptoContext(req.EncryptionContext, req.AssociatedData),
	})
	if err != nil {
		c.Error(err)
		return
	}
	auditKey(c, res.KeyID, res.KeyVersion)
	respondJSON(c, wire.DecryptResponse{KeyID: res.KeyID, KeyVersion: res.KeyVersion, Plaintext: res.Plaintext}, appendDecryptResponse)
}

func (s *server) generateDataKey(c *gin.Context) {
	var req wire.GenerateDataKeyRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	res, err := s.keys.GenerateDataKey(c.Request.Context(), keys.DataKeyParams{
		Organization:     org(c),
		Allow:            allow(c),
		KeyID:            c.Param("id"),
		KeySizeBits:      req.KeySize,
		WithoutPlaintext: req.WithoutPlaintext,
		Context:          cryptoContext(req.EncryptionContext, req.AssociatedData),
	})
	if err != nil {
		c.Error(err)
		return
	}
	out := wire.GenerateDataKeyResponse{KeyID: res.KeyID, KeyVersion: res.KeyVersion, Plaintext: res.Plaintext, Ciphertext: res.Ciphertext}
	if req.WithoutPlaintext {
		out.Plaintext = nil
	}
	auditKey(c, res.KeyID, res.KeyVersion)
	respondJSON(c, out, appendGenerateDataKeyResponse)
}

// reEncrypt serves POST /v1/re-encrypt and POST /v1/keys/{id}/re-encrypt
// (which also checks the ciphertext is that key's).
func (s *server) reEncrypt(c *gin.Context) {
	var req wire.ReEncryptRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	res, err := s.keys.ReEncrypt(c.Request.Context(), keys.ReEncryptParams{
		Organization:       org(c),
		Allow:              allow(c),
		KeyID:              c.Param("id"),
		Ciphertext:         req.Ciphertext,
		Context:            cryptoContext(req.EncryptionContext, req.AssociatedData),
		DestinationKeyID:   defaultKeyAlias(c, req.DestinationKeyID),
		DestinationContext: cryptoContext(req.DestinationEncryptionContext, req.DestinationAssociatedData),
	})
	if err != nil {
		c.Error(err)
		return
	}
	auditKey(c, res.KeyID, res.KeyVersion)
	respondJSON(c, wire.ReEncryptResponse{KeyID: res.KeyID, KeyVersion: res.KeyVersion, Ciphertext: res.Ciphertext}, appendReEncryptResponse)
}
