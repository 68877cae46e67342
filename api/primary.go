package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/keys"
)

// updatePrimary serves POST /v1/keys/{id}/update-primary.
func (s *server) updatePrimary(c *gin.Context) {
	var req wire.UpdatePrimaryRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	if err := checkZone("primary_zone", req.PrimaryZone); err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.UpdatePrimary(c.Request.Context(), keys.UpdatePrimaryParams{KeyRef: ref, Zone: req.PrimaryZone, Force: req.Force})
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}
