package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyzone/keyzone/api/wire"
)

// CreateOrganization creates an organization with its default key
// (POST /v1/orgs, the operator's token). Zero limits in req take the
// server's defaults. The organization is written in the deployment's home
// zone; a node of another zone forwards the call there.
func (c *Client) CreateOrganization(ctx context.Context, req wire.CreateOrganizationRequest, opts ...CallOption) (wire.Organization, error) {
	var out wire.Organization
	err := c.do(ctx, http.MethodPost, "/v1/orgs", nil, req, &out, opts)
	return out, err
}

// ListOrganizations lists every organization (GET /v1/orgs, the
// operator's token).
func (c *Client) ListOrganizations(ctx context.Context, opts ...CallOption) (wire.ListOrganizationsResponse, error) {
	var out wire.ListOrganizationsResponse
	err := c.do(ctx, http.MethodGet, "/v1/orgs", nil, nil, &out, opts)
	return out, err
}

// GetOrganization returns an organization named by its id or its name
// (GET /v1/orgs/{org}).
func (c *Client) GetOrganization(ctx context.Context, org string, opts ...CallOption) (wire.Organization, error) {
	var out wire.Organization
	p, err := orgPath(org, "")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &out, opts)
	return out, err
}

// UpdateOrganization changes an organization's quota and rate limit
// (PATCH /v1/orgs/{org}); nil fields of req are left alone.
func (c *Client) UpdateOrganization(ctx context.Context, org string, req wire.UpdateOrganizationRequest, opts ...CallOption) (wire.Organization, error) {
	var out wire.Organization
	p, err := orgPath(org, "")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPatch, p, nil, req, &out, opts)
	return out, err
}

// CreateToken creates a token of org (POST /v1/orgs/{org}/tokens, the
// operator's token or an org-admin's of org). The answer holds the
// token's secret: the only time it is shown.
func (c *Client) CreateToken(ctx context.Context, org string, req wire.CreateTokenRequest, opts ...CallOption) (wire.CreatedToken, error) {
	var out wire.CreatedToken
	p, err := orgPath(org, "tokens")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p, nil, req, &out, opts)
	return out, err
}

// ListTokens lists org's tokens, revoked ones too, never their secrets
// (GET /v1/orgs/{org}/tokens).
func (c *Client) ListTokens(ctx context.Context, org string, opts ...CallOption) (wire.ListTokensResponse, error) {
	var out wire.ListTokensResponse
	p, err := orgPath(org, "tokens")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &out, opts)
	return out, err
}

// RevokeToken revokes the token id of org (DELETE
// /v1/orgs/{org}/tokens/{id}) and returns it as revoked. Other zones
// refuse it once the revocation has replicated to them.
func (c *Client) RevokeToken(ctx context.Context, org, id string, opts ...CallOption) (wire.Token, error) {
	var out wire.Token
	if err := checkSegment("token id", id); err != nil {
		return out, err
	}
	p, err := orgPath(org, "tokens/"+url.PathEscape(id))
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodDelete, p, nil, nil, &out, opts)
	return out, err
}

// WhoAmI says who the client's token is (GET /v1/whoami): the operator,
// or an organization's token with its role.
func (c *Client) WhoAmI(ctx context.Context, opts ...CallOption) (wire.Principal, error) {
	var out wire.Principal
	err := c.do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &out, opts)
	return out, err
}

// orgPath is /v1/orgs/{org}[/suffix] with org escaped.
func orgPath(org, suffix string) (string, error) {
	if err := checkSegment("organization", org); err != nil {
		return "", err
	}
	p := "/v1/orgs/" + url.PathEscape(org)
	if suffix != "" {
		p += "/" + suffix
	}
	return p, nil
}

// checkSegment refuses a value that, as a path segment, would name
// another route: empty, "." or "..", or holding a slash (the server
// decodes %2F before routing, and a proxy normalises dots away).
func checkSegment(what, v string) error {
	if v == "" || v == "." || v == ".." || strings.Contains(v, "/") {
		return fmt.Errorf("keyzone: invalid %s %q", what, v)
	}
	return nil
}
