package fsm

import (
	"cmp"
	"errors"
	"slices"
	"strings"
)

// Role is what a token may do inside its organization. The API maps each
// route to the roles allowed on it; a route no role names is refused.
type Role string

const (
	// RoleOrgAdmin does everything in its organization: key lifecycle,
	// crypto and the organization's tokens.
	RoleOrgAdmin Role = "org-admin"
	// RoleKeyAdmin manages keys (create, change, rotate, delete) and
	// reads them, but does no crypto.
	RoleKeyAdmin Role = "key-admin"
	// RoleCryptoUser encrypts, decrypts, makes data keys and
	// re-encrypts, optionally only with the keys its token names (by id
	// or by tag).
	RoleCryptoUser Role = "crypto-user"
	// RoleAuditor reads key metadata and the organization's tokens
	// (never a secret); no crypto, no change.
	RoleAuditor Role = "auditor"
)

// Roles lists every role, in the order the docs present them.
var Roles = []Role{RoleOrgAdmin, RoleKeyAdmin, RoleCryptoUser, RoleAuditor}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Tenancy records are global: written in the deployment's home zone only
// and carried to every other zone by the home zone's change log, so that
// authentication works in every zone while the home zone is away. Their
// change-log slots are named by these prefixes (key ids are hex, so they
// never collide).
const (
	orgSlotPrefix   = "org:"
	tokenSlotPrefix = "token:"
)

// DefaultKeyQuota is an organization's key quota when its creator names
// none: keys whose primary is in one zone, per zone (replicas don't count
// in the replica's zone, and the default key doesn't count).
const DefaultKeyQuota = 1000

// MaxOrganizationName bounds an organization's name.
const MaxOrganizationName = 64

// Organization is a tenant. Every key and token belongs to one.
type Organization struct {
	ID   string `json:"id"`
	Name string `json:"name"` // unique in the deployment
	// DefaultKeyID is the organization's default key, created with it:
	// protected, replicated to every zone the deployment had then, never
	// deleted, disabled or unprotected, always rotating.
	DefaultKeyID string `json:"default_key_id"`
	// HomeZone is the zone the record was written in: other zones accept
	// its changes from that zone's log only.
	HomeZone string `json:"home_zone"`
	// KeyQuota bounds the organization's primary keys per zone (the
	// default key aside).
	KeyQuota int `json:"key_quota"`
	// RateLimit is the organization's request rate per node (requests per
	// second, a token bucket of RateBurst); 0 means the server's default,
	// a negative value no limit.
	RateLimit float64 `json:"rate_limit"`
	RateBurst int     `json:"rate_burst"`
	CreatedAt int64   `json:"created_at"` // unix ns
	UpdatedAt int64   `json:"updated_at"`
	// Generation counts the record's changes: a zone replaces its copy
	// only with a higher generation.
	Generation uint64 `json:"generation"`
}

// Token is an API token of an organization. Only the SHA-256 of its
// secret is kept; the secret is shown once, at creation.
type Token struct {
	ID           string `json:"id"`
	Organization string `json:"organization"`
	Role         Role   `json:"role"`
	// SecretHash is the SHA-256 of the whole secret string.
	SecretHash []byte `json:"secret_hash"`
	// KeyIDs and Tags, for a crypto-user, restrict the keys it may use:
	// a key qualifies if its id is in KeyIDs or it carries one of Tags.
	// Both empty: every key of the organization.
	KeyIDs      []string `json:"key_ids,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Description string   `json:"description,omitempty"`
	HomeZone    string   `json:"home_zone"`
	CreatedAt   int64    `json:"created_at"`           // unix ns
	ExpiresAt   int64    `json:"expires_at,omitempty"` // unix ns; 0: never
	RevokedAt   int64    `json:"revoked_at,omitempty"` // unix ns; 0: live
	Generation  uint64   `json:"generation"`
}

// Revoked reports whether the token was revoked.
func (t *Token) Revoked() bool { return t.RevokedAt != 0 }

// Expired reports whether the token has expired at now (unix ns).
func (t *Token) Expired(now int64) bool { return t.ExpiresAt != 0 && now >= t.ExpiresAt }

// MayUse reports whether the token's key restriction lets it use k.
func (t *Token) MayUse(k *Key) bool {
	if len(t.KeyIDs) == 0 && len(t.Tags) == 0 {
		return true
	}
	if slices.Contains(t.KeyIDs, k.ID) {
		return true
	}
	for _, tag := range t.Tags {
		if slices.Contains(k.Tags, tag) {
			return true
		}
	}
	return false
}

// Tenancy errors (codes in errors.go's table).
var (
	// ErrOrganizationNotFound: no organization with that id. HTTP 404.
	ErrOrganizationNotFound = errors.New("fsm: organization not found")
	// ErrOrganizationExists: the id or the name is taken. HTTP 409.
	ErrOrganizationExists = errors.New("fsm: organization already exists")
	// ErrTokenNotFound: no token with that id in the organization. HTTP 404.
	ErrTokenNotFound = errors.New("fsm: token not found")
	// ErrQuotaExceeded: the organization holds its quota of keys in this
	// zone. HTTP 409.
	ErrQuotaExceeded = errors.New("fsm: key quota exceeded")
	// ErrDefaultKey: the default key of an organization can't be deleted,
	// disabled or unprotected, lose its rotation or a replica zone. HTTP 409.
	ErrDefaultKey = errors.New("fsm: the organization's default key can't be changed that way")
)

// Codes of the tenancy refusals, for forwarding and the HTTP API.
const (
	CodeOrganizationNotFound = "organization_not_found"
	CodeOrganizationExists   = "organization_exists"
	CodeTokenNotFound        = "token_not_found"
	CodeQuotaExceeded        = "quota_exceeded"
	CodeDefaultKey           = "default_key"
)

// Queries. All take the read lock and return stored records, which
// callers must not mutate (Apply replaces them, never changes them).

// Organization returns the organization with id.
func (f *FSM) Organization(id string) (*Organization, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	o, ok := f.st.orgs[id]
	return o, ok
}

// OrganizationByName returns the organization named name.
func (f *FSM) OrganizationByName(name string) (*Organization, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.st.orgByName[name]
	if !ok {
		return nil, false
	}
	o, ok := f.st.orgs[id]
	return o, ok
}

// Organizations returns every organization, sorted by name (then id).
func (f *FSM) Organizations() []*Organization {
	f.mu.RLock()
	out := make([]*Organization, 0, len(f.st.orgs))
	for _, o := range f.st.orgs {
		out = append(out, o)
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Organization) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out
}

// Token returns the token with id, revoked or expired ones too.
func (f *FSM) Token(id string) (*Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.tokens[id]
	return t, ok
}

// Tokens returns the tokens of organization org, revoked and expired
// ones too, sorted by CreatedAt, then id.
func (f *FSM) Tokens(org string) []*Token {
	f.mu.RLock()
	ids := f.st.orgTokens[org]
	out := make([]*Token, 0, len(ids))
	for id := range ids {
		out = append(out, f.st.tokens[id])
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Token) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

// PrimaryKeyCount returns how many live keys of organization org count
// against its quota in this zone: those whose primary is this zone
// (every key in a single-zone state machine), the default key aside. It
// is a counter kept by Apply: O(1).
func (f *FSM) PrimaryKeyCount(org string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.primaries[org]
}
