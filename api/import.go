package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/keys"
)

// importParameters serves GET /v1/keys/{id}/import-parameters. Each call
// draws new parameters, replacing the key's previous ones.
func (s *server) importParameters(c *gin.Context) {
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	p, err := s.keys.ImportParameters(c.Request.Context(), ref)
	if err != nil {
		c.Error(err)
		return
	}
	// The token is a secret shown once: no cache may keep it.
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, wire.ImportParameters{
		KeyID:       p.KeyID,
		Algorithm:   p.Algorithm,
		PublicKey:   p.PublicKey,
		HPKEInfo:    p.Info,
		ImportToken: p.ImportToken,
		TokenID:     p.TokenID,
		ExpiresAt:   p.ExpiresAt.UTC(),
	})
}

// importKeyMaterial serves POST /v1/keys/{id}/import. Whether raw
// material is acceptable depends on the connection, which only this
// layer sees: the service gets it as OverTLS.
func (s *server) importKeyMaterial(c *gin.Context) {
	var req wire.ImportKeyMaterialRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.ImportKeyMaterial(c.Request.Context(), keys.ImportMaterialParams{
		KeyRef:      ref,
		ImportToken: req.ImportToken,
		Sealed:      req.EncryptedMaterial,
		Raw:         req.KeyMaterial,
		OverTLS:     c.Request.TLS != nil,
	})
	clear(req.KeyMaterial)
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}
