package wire

import "time"

// Organization routes (the cluster operator's token):
//
//	POST   /v1/orgs                     CreateOrganizationRequest -> 201 Organization
//	GET    /v1/orgs                     -> ListOrganizationsResponse
//	GET    /v1/orgs/{org}               -> Organization ({org} is an id or a name)
//	PATCH  /v1/orgs/{org}               UpdateOrganizationRequest -> Organization
//
// Token routes (the operator, or an org-admin of {org}; an auditor of
// {org} may list):
//
//	POST   /v1/orgs/{org}/tokens        CreateTokenRequest -> 201 CreatedToken
//	GET    /v1/orgs/{org}/tokens        -> ListTokensResponse
//	DELETE /v1/orgs/{org}/tokens/{id}   -> Token (revoked)
//
// GET /v1/whoami (any valid token) -> Principal.
//
// Organizations and tokens are written in the deployment's home zone: a
// node of another zone forwards the change there, and answers 503 when it
// can't reach it.

// CreateOrganizationRequest is the body of POST /v1/orgs. Zero limits
// take the server's defaults.
type CreateOrganizationRequest struct {
	Name      string  `json:"name"`
	KeyQuota  int     `json:"key_quota,omitempty"`
	RateLimit float64 `json:"rate_limit,omitempty"`
	RateBurst int     `json:"rate_burst,omitempty"`
}

// UpdateOrganizationRequest is the body of PATCH /v1/orgs/{org}; absent
// fields are left alone. A negative rate_limit turns the limit off; 0
// returns to the server's default.
type UpdateOrganizationRequest struct {
	KeyQuota  *int     `json:"key_quota,omitempty"`
	RateLimit *float64 `json:"rate_limit,omitempty"`
	RateBurst *int     `json:"rate_burst,omitempty"`
}

// Organization is a tenant.
type Organization struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	DefaultKeyID string    `json:"default_key_id"`
	HomeZone     string    `json:"home_zone"`
	KeyQuota     int       `json:"key_quota"`
	RateLimit    float64   `json:"rate_limit"` // requests/s per node; 0: the server's default; < 0: none
	RateBurst    int       `json:"rate_burst"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ListOrganizationsResponse is the body of GET /v1/orgs.
type ListOrganizationsResponse struct {
	Organizations []Organization `json:"organizations"`
}

// CreateTokenRequest is the body of POST /v1/orgs/{org}/tokens. Role is
// one of org-admin, key-admin, crypto-user, auditor. KeyIDs and Tags
// restrict a crypto-user to the keys named or tagged (a key id may be
// "default"). ExpiresIn is a Go duration; empty: the token never expires.
type CreateTokenRequest struct {
	Role        string   `json:"role"`
	KeyIDs      []string `json:"key_ids,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	ExpiresIn   string   `json:"expires_in,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Token is a token's metadata: never its secret.
type Token struct {
	ID           string     `json:"id"`
	Organization string     `json:"organization"`
	Role         string     `json:"role"`
	KeyIDs       []string   `json:"key_ids,omitempty"`
	Tags         []string   `json:"tags,omitempty"`
	Description  string     `json:"description,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// CreatedToken is the answer to a token creation: the only time the
// secret is shown.
type CreatedToken struct {
	Token
	Secret string `json:"secret"`
}

// ListTokensResponse is the body of GET /v1/orgs/{org}/tokens.
type ListTokensResponse struct {
	Tokens []Token `json:"tokens"`
}

// Principal says who a token is: the operator (Operator true, no
// organization) or an organization's token.
type Principal struct {
	Operator     bool   `json:"operator"`
	Organization string `json:"organization,omitempty"`
	TokenID      string `json:"token_id,omitempty"`
	Role         string `json:"role,omitempty"`
}
