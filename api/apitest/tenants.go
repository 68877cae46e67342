package apitest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// DefaultKeyID is the default key id of the fake's organizations.
const DefaultKeyID = "00000000-0000-4000-8000-0000000000de"

// Tenants is an in-memory TenantService. It starts with one organization,
// fsm.DefaultOrganization (id and name "default"); AddToken gives it, or
// any organization, tokens with known secrets.
type Tenants struct {
	mu     sync.Mutex
	orgs   map[string]*fsm.Organization
	tokens map[string]*fsm.Token // by secret
	seq    int
	// Now is the fake's clock for expiries; nil means time.Now.
	Now func() time.Time
	// CatchUpErr, when set, is what Authenticate returns for a secret it
	// does not know, as a node that can't catch up with its zone does.
	CatchUpErr error
}

// NewTenants returns a fake with the organization "default".
func NewTenants() *Tenants {
	t := &Tenants{orgs: map[string]*fsm.Organization{}, tokens: map[string]*fsm.Token{}}
	t.orgs[fsm.DefaultOrganization] = &fsm.Organization{
		ID: fsm.DefaultOrganization, Name: fsm.DefaultOrganization, DefaultKeyID: DefaultKeyID,
		KeyQuota: fsm.DefaultKeyQuota, HomeZone: Zone,
	}
	return t
}

func (f *Tenants) now() int64 {
	if f.Now != nil {
		return f.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// AddOrganization adds an organization with id and name name.
func (f *Tenants) AddOrganization(name string) *fsm.Organization {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &fsm.Organization{ID: name, Name: name, DefaultKeyID: DefaultKeyID, KeyQuota: fsm.DefaultKeyQuota, HomeZone: Zone}
	f.orgs[name] = o
	return o
}

// Organization returns the stored record, to change in tests (before
// requests are served).
func (f *Tenants) Org(id string) *fsm.Organization {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.orgs[id]
}

// AddToken makes secret a token of org with role and returns it.
func (f *Tenants) AddToken(secret, org string, role fsm.Role) *fsm.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	sum := sha256.Sum256([]byte(secret))
	t := &fsm.Token{ID: fmt.Sprintf("tok%03d", f.seq), Organization: org, Role: role, SecretHash: sum[:], CreatedAt: f.now()}
	f.tokens[secret] = t
	return t
}

// Authenticate implements api.TenantService.
func (f *Tenants) Authenticate(_ context.Context, secret string) (*fsm.Token, *fsm.Organization, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := sha256.Sum256([]byte(secret))
	for _, t := range f.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.SecretHash) == 1 && !t.Revoked() && !t.Expired(f.now()) {
			if o, ok := f.orgs[t.Organization]; ok {
				return t, o, nil
			}
		}
	}
	if f.CatchUpErr != nil {
		return nil, nil, f.CatchUpErr
	}
	return nil, nil, keys.ErrUnauthenticated
}

// CreateOrganization implements api.TenantService.
func (f *Tenants) CreateOrganization(_ context.Context, p keys.CreateOrganizationParams) (*fsm.Organization, error) {
	if p.Name == "" || strings.ContainsAny(p.Name, " /") {
		return nil, fmt.Errorf("organization name %q: %w", p.Name, keys.ErrInvalidArgument)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.orgs {
		if o.Name == p.Name {
			return nil, fmt.Errorf("organization %s: %w", p.Name, fsm.ErrOrganizationExists)
		}
	}
	f.seq++
	o := &fsm.Organization{
		ID: fmt.Sprintf("org%03d", f.seq), Name: p.Name, DefaultKeyID: DefaultKeyID, HomeZone: Zone,
		KeyQuota: p.KeyQuota, RateLimit: p.RateLimit, RateBurst: p.RateBurst, CreatedAt: f.now(), UpdatedAt: f.now(),
	}
	if o.KeyQuota == 0 {
		o.KeyQuota = fsm.DefaultKeyQuota
	}
	f.orgs[o.ID] = o
	return o, nil
}

// UpdateOrganization implements api.TenantService.
func (f *Tenants) UpdateOrganization(_ context.Context, p keys.UpdateOrganizationParams) (*fsm.Organization, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orgs[p.Organization]
	if !ok {
		return nil, fmt.Errorf("organization %s: %w", p.Organization, fsm.ErrOrganizationNotFound)
	}
	c := *o
	if p.KeyQuota != nil {
		c.KeyQuota = *p.KeyQuota
	}
	if p.RateLimit != nil {
		c.RateLimit = *p.RateLimit
	}
	if p.RateBurst != nil {
		c.RateBurst = *p.RateBurst
	}
	f.orgs[o.ID] = &c
	return &c, nil
}

// ListOrganizations implements api.TenantService.
func (f *Tenants) ListOrganizations(context.Context) ([]*fsm.Organization, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*fsm.Organization, 0, len(f.orgs))
	for _, o := range f.orgs {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *fsm.Organization) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Organization implements api.TenantService.
func (f *Tenants) Organization(_ context.Context, ref string) (*fsm.Organization, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.orgs {
		if o.ID == ref || o.Name == ref {
			return o, nil
		}
	}
	return nil, fmt.Errorf("organization %s: %w", ref, fsm.ErrOrganizationNotFound)
}

// CreateToken implements api.TenantService; the secret is "secret-<id>".
func (f *Tenants) CreateToken(_ context.Context, p keys.CreateTokenParams) (keys.NewToken, error) {
	if !p.Role.Valid() {
		return keys.NewToken{}, fmt.Errorf("role %q: %w", p.Role, keys.ErrInvalidArgument)
	}
	f.mu.Lock()
	if _, ok := f.orgs[p.Organization]; !ok {
		f.mu.Unlock()
		return keys.NewToken{}, fmt.Errorf("organization %s: %w", p.Organization, fsm.ErrOrganizationNotFound)
	}
	secret := fmt.Sprintf("secret-%d", f.seq+1)
	f.mu.Unlock()
	t := f.AddToken(secret, p.Organization, p.Role)
	f.mu.Lock()
	defer f.mu.Unlock()
	t.KeyIDs, t.Tags, t.Description = p.KeyIDs, p.Tags, p.Description
	if p.ExpiresIn > 0 {
		t.ExpiresAt = t.CreatedAt + int64(p.ExpiresIn)
	}
	c := *t
	return keys.NewToken{Token: &c, Secret: secret}, nil
}

// ListTokens implements api.TenantService.
func (f *Tenants) ListTokens(_ context.Context, org string) ([]*fsm.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fsm.Token
	for _, t := range f.tokens {
		if t.Organization == org {
			c := *t
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *fsm.Token) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// RevokeToken implements api.TenantService.
func (f *Tenants) RevokeToken(_ context.Context, org, id string) (*fsm.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tokens {
		if t.ID == id && t.Organization == org {
			if t.RevokedAt == 0 {
				t.RevokedAt = f.now()
			}
			c := *t
			return &c, nil
		}
	}
	return nil, fmt.Errorf("token %s: %w", id, fsm.ErrTokenNotFound)
}
