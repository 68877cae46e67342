package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// TenantService is what the API needs of organizations and tokens;
// *keys.Service satisfies it.
type TenantService interface {
	// Authenticate returns the live token whose secret this is and its
	// organization, or keys.ErrUnauthenticated, which says nothing of why
	// not; any other error means the node could not tell (it is catching
	// up with its zone) and is answered as such, not as a bad token.
	Authenticate(ctx context.Context, secret string) (*fsm.Token, *fsm.Organization, error)
	CreateOrganization(ctx context.Context, p keys.CreateOrganizationParams) (*fsm.Organization, error)
	UpdateOrganization(ctx context.Context, p keys.UpdateOrganizationParams) (*fsm.Organization, error)
	ListOrganizations(ctx context.Context) ([]*fsm.Organization, error)
	// Organization finds an organization by id or by name.
	Organization(ctx context.Context, ref string) (*fsm.Organization, error)
	CreateToken(ctx context.Context, p keys.CreateTokenParams) (keys.NewToken, error)
	ListTokens(ctx context.Context, org string) ([]*fsm.Token, error)
	RevokeToken(ctx context.Context, org, id string) (*fsm.Token, error)
}

// errHomeUnreachable: a tenancy change could not reach the home zone.
type errHomeUnreachable struct{ zone string }

func (e *errHomeUnreachable) Error() string {
	return "organizations and tokens change in the home zone " + e.zone +
		", which is unreachable: retry later (tokens keep working in every zone)"
}

// forwardToHome sends a change of an organization or a token on to the
// home zone, where they are written, and relays the answer. The caller
// has been authenticated and authorized here; the home zone checks again.
func (s *server) forwardToHome(c *gin.Context) {
	if s.homeZone == s.zone || s.forwarder == nil || c.GetHeader(headerForwardedFrom) != "" {
		c.Next()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody))
	if err != nil {
		c.Error(errBodyTooLarge)
		c.Abort()
		return
	}
	c.Request.Header.Set(headerForwardedFrom, s.zone)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	err = s.forwarder.Forward(c.Writer, c.Request, s.homeZone, body)
	c.Abort()
	if err == nil {
		return
	}
	s.logger.Warn("forward to the home zone failed", "zone", s.homeZone, "route", route(c), "error", err)
	switch {
	case errors.Is(err, ErrZoneUnreachable):
		c.Error(&errHomeUnreachable{zone: s.homeZone})
	case c.Writer.Written():
	default:
		c.Error(&errHomeOutcomeUnknown{zone: s.homeZone})
	}
}

// errHomeOutcomeUnknown: the home zone may have received the change, but
// its answer was lost. Tenancy changes take no Idempotency-Key, so the
// caller is told to look before retrying (a retried token creation would
// make a second token).
type errHomeOutcomeUnknown struct{ zone string }

func (e *errHomeOutcomeUnknown) Error() string {
	return "the home zone " + e.zone + " did not answer the forwarded change: the outcome is unknown; " +
		"list the organizations or tokens before retrying"
}

// orgParam resolves the path's organization (an id or a name). An
// organization's token sees only its own: any other answers exactly like
// one that does not exist.
func (s *server) orgParam(c *gin.Context) (*fsm.Organization, error) {
	ref := c.Param("org")
	p := caller(c)
	if p != nil && !p.operator {
		if ref == p.org.ID || ref == p.org.Name {
			return p.org, nil
		}
		return nil, fmt.Errorf("organization %s: %w", auditParam(ref), fsm.ErrOrganizationNotFound)
	}
	o, err := s.tenants.Organization(c.Request.Context(), ref)
	if err == nil {
		auditOrg(c, o.ID)
	}
	return o, err
}

func (s *server) whoami(c *gin.Context) {
	p := caller(c)
	out := wire.Principal{Operator: p.operator, Role: p.role()}
	if !p.operator {
		out.Organization, out.TokenID = p.org.ID, p.token.ID
	}
	c.JSON(http.StatusOK, out)
}

func (s *server) createOrganization(c *gin.Context) {
	var req wire.CreateOrganizationRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	o, err := s.tenants.CreateOrganization(c.Request.Context(), keys.CreateOrganizationParams{
		Name: req.Name, KeyQuota: req.KeyQuota, RateLimit: req.RateLimit, RateBurst: req.RateBurst,
	})
	if err != nil {
		c.Error(err)
		return
	}
	auditOrg(c, o.ID)
	c.JSON(http.StatusCreated, wireOrganization(o))
}

func (s *server) listOrganizations(c *gin.Context) {
	orgs, err := s.tenants.ListOrganizations(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	out := wire.ListOrganizationsResponse{Organizations: make([]wire.Organization, 0, len(orgs))}
	for _, o := range orgs {
		out.Organizations = append(out.Organizations, wireOrganization(o))
	}
	c.JSON(http.StatusOK, out)
}

func (s *server) getOrganization(c *gin.Context) {
	o, err := s.orgParam(c)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireOrganization(o))
}

func (s *server) updateOrganization(c *gin.Context) {
	var req wire.UpdateOrganizationRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	o, err := s.orgParam(c)
	if err != nil {
		c.Error(err)
		return
	}
	o, err = s.tenants.UpdateOrganization(c.Request.Context(), keys.UpdateOrganizationParams{
		Organization: o.ID, KeyQuota: req.KeyQuota, RateLimit: req.RateLimit, RateBurst: req.RateBurst,
	})
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireOrganization(o))
}

func (s *server) createToken(c *gin.Context) {
	var req wire.CreateTokenRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		c.Error(err)
		return
	}
	o, err := s.orgParam(c)
	if err != nil {
		c.Error(err)
		return
	}
	var ttl time.Duration
	if req.ExpiresIn != "" {
		if ttl, err = time.ParseDuration(req.ExpiresIn); err != nil || ttl <= 0 {
			c.Error(badRequest("expires_in %q: want a positive Go duration such as 720h", auditParam(req.ExpiresIn)))
			return
		}
	}
	nt, err := s.tenants.CreateToken(c.Request.Context(), keys.CreateTokenParams{
		Organization: o.ID, Role: fsm.Role(req.Role), KeyIDs: req.KeyIDs, Tags: req.Tags,
		ExpiresIn: ttl, Description: req.Description,
	})
	if err != nil {
		c.Error(err)
		return
	}
	// The secret is shown once: no cache may keep it.
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, wire.CreatedToken{Token: wireToken(nt.Token), Secret: nt.Secret})
}

func (s *server) listTokens(c *gin.Context) {
	o, err := s.orgParam(c)
	if err != nil {
		c.Error(err)
		return
	}
	toks, err := s.tenants.ListTokens(c.Request.Context(), o.ID)
	if err != nil {
		c.Error(err)
		return
	}
	out := wire.ListTokensResponse{Tokens: make([]wire.Token, 0, len(toks))}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, wireToken(t))
	}
	c.JSON(http.StatusOK, out)
}

func (s *server) revokeToken(c *gin.Context) {
	o, err := s.orgParam(c)
	if err != nil {
		c.Error(err)
		return
	}
	t, err := s.tenants.RevokeToken(c.Request.Context(), o.ID, c.Param("token"))
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireToken(t))
}

func wireOrganization(o *fsm.Organization) wire.Organization {
	return wire.Organization{
		ID: o.ID, Name: o.Name, DefaultKeyID: o.DefaultKeyID, HomeZone: o.HomeZone,
		KeyQuota: o.KeyQuota, RateLimit: o.RateLimit, RateBurst: o.RateBurst,
		CreatedAt: unixTime(o.CreatedAt), UpdatedAt: unixTime(o.UpdatedAt),
	}
}

func wireToken(t *fsm.Token) wire.Token {
	w := wire.Token{
		ID: t.ID, Organization: t.Organization, Role: string(t.Role), KeyIDs: t.KeyIDs, Tags: t.Tags,
		Description: t.Description, CreatedAt: unixTime(t.CreatedAt),
	}
	if t.ExpiresAt != 0 {
		at := unixTime(t.ExpiresAt)
		w.ExpiresAt = &at
	}
	if t.RevokedAt != 0 {
		at := unixTime(t.RevokedAt)
		w.RevokedAt = &at
	}
	return w
}
