package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// errNoKey reports a service that returned neither a key nor an error.
var errNoKey = errors.New("api: key service returned no key")

// renderKey writes k with its revision as the ETag and the session index.
func (s *server) renderKey(c *gin.Context, status int, k *fsm.Key) {
	if k == nil {
		c.Error(errNoKey)
		return
	}
	auditKey(c, k.ID, k.CurrentVersion)
	c.Header("ETag", strconv.Quote(strconv.FormatUint(k.Revision, 10)))
	c.Header(headerIndex, s.sessionIndex(k))
	respondJSONStatus(c, status, wireKey(k), appendKey)
}

// keyRef names the key of the path, with the If-Match condition if any.
func keyRef(c *gin.Context) (keys.KeyRef, error) {
	rev, err := ifMatch(c.Request.Header)
	return keys.KeyRef{Organization: org(c), KeyID: c.Param("id"), IfRevision: rev}, err
}

func (s *server) createKey(c *gin.Context) {
	var req wire.CreateKeyRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	idem, err := idempotencyKey(c.Request.Header)
	if err != nil {
		c.Error(err)
		return
	}
	period, err := parseDuration("rotation_policy.rotation_period", req.RotationPolicy.RotationPeriod)
	if err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.CreateKey(c.Request.Context(), keys.CreateParams{
		Organization:   org(c),
		Name:           req.Name,
		Description:    req.Description,
		Tags:           req.Tags,
		Usage:          req.Usage,
		Algorithm:      req.Algorithm,
		Origin:         req.Origin,
		Protected:      req.Protected,
		RotationPeriod: period,
		ReplicaZones:   req.ReplicaZones,
		IdempotencyKey: idem,
	})
	if err != nil {
		c.Error(err)
		return
	}
	if k != nil {
		c.Header("Location", "/v1/keys/"+url.PathEscape(k.ID))
	}
	s.renderKey(c, http.StatusCreated, k)
}

func (s *server) listKeys(c *gin.Context) {
	p := keys.ListParams{
		Organization: org(c),
		Name:         c.Query("name"),
		Tag:          c.Query("tag"),
		State:        fsm.KeyState(c.Query("state")),
		PageToken:    c.Query("page_token"),
	}
	if v := c.Query("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			c.Error(badRequest("query parameter \"page_size\": want a non-negative integer"))
			return
		}
		p.PageSize = n
	}
	var err error
	if p.Stale, err = queryBool(c, "stale"); err != nil {
		c.Error(err)
		return
	}
	res, err := s.keys.ListKeys(c.Request.Context(), p)
	if err != nil {
		c.Error(err)
		return
	}
	out := wire.ListKeysResponse{Keys: make([]wire.Key, 0, len(res.Keys)), NextPageToken: res.NextPageToken}
	for _, k := range res.Keys {
		if k != nil {
			out.Keys = append(out.Keys, wireKey(k))
		}
	}
	c.JSON(http.StatusOK, out)
}

// fetchKey serves the reads of one key; stale=true opts into a local read.
func (s *server) fetchKey(c *gin.Context) (*fsm.Key, error) {
	stale, err := queryBool(c, "stale")
	if err != nil {
		return nil, err
	}
	k, err := s.keys.GetKey(c.Request.Context(), org(c), c.Param("id"), stale)
	if err == nil && k == nil {
		err = errNoKey
	}
	return k, err
}

func (s *server) getKey(c *gin.Context) {
	k, err := s.fetchKey(c)
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}

func (s *server) keyVersions(c *gin.Context) {
	k, err := s.fetchKey(c)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireVersions(k))
}

func (s *server) updateKey(c *gin.Context) {
	var req wire.UpdateKeyRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	p := keys.UpdateParams{KeyRef: ref, Name: req.Name, Description: req.Description, Tags: req.Tags}
	if req.RotationPolicy != nil {
		period, err := parseDuration("rotation_policy.rotation_period", req.RotationPolicy.RotationPeriod)
		if err != nil {
			c.Error(err)
			return
		}
		p.RotationPeriod = &period
	}
	k, err := s.keys.UpdateKey(c.Request.Context(), p)
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}

// lifecycle serves the POSTs that take no body (an empty one or {}) and
// return the key.
func (s *server) lifecycle(op func(context.Context, keys.KeyRef) (*fsm.Key, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.bindJSON(c, &struct{}{}, true); err != nil {
			c.Error(err)
			return
		}
		ref, err := keyRef(c)
		if err != nil {
			c.Error(err)
			return
		}
		k, err := op(c.Request.Context(), ref)
		if err != nil {
			c.Error(err)
			return
		}
		s.renderKey(c, http.StatusOK, k)
	}
}

func (s *server) rotateKey(c *gin.Context) {
	if err := s.bindJSON(c, &struct{}{}, true); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	idem, err := idempotencyKey(c.Request.Header)
	if err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.RotateKey(c.Request.Context(), keys.RotateParams{KeyRef: ref, IdempotencyKey: idem})
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}

func (s *server) scheduleDeletion(c *gin.Context) {
	var req wire.ScheduleDeletionRequest
	if err := s.bindJSON(c, &req, true); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	window, err := parseDuration("pending_window", req.PendingWindow)
	if err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.ScheduleDeletion(c.Request.Context(), keys.ScheduleDeletionParams{KeyRef: ref, PendingWindow: window})
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}

func (s *server) addReplica(c *gin.Context) {
	var req wire.AddReplicaRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	if err := checkZone("field \"zone\"", req.Zone); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.AddReplica(c.Request.Context(), ref, req.Zone)
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}

func (s *server) removeReplica(c *gin.Context) {
	if err := s.bindJSON(c, &struct{}{}, true); err != nil {
		c.Error(err)
		return
	}
	zone := c.Param("zone")
	if err := checkZone("path zone", zone); err != nil {
		c.Error(err)
		return
	}
	ref, err := keyRef(c)
	if err != nil {
		c.Error(err)
		return
	}
	k, err := s.keys.RemoveReplica(c.Request.Context(), ref, zone)
	if err != nil {
		c.Error(err)
		return
	}
	s.renderKey(c, http.StatusOK, k)
}
