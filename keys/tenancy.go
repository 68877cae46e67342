package keys

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// Tenancy: organizations and their tokens. Both are written in the
// deployment's home zone only (Config.HomeZone) and reach every other zone
// through the home zone's change log, so that a token authenticates in
// every zone, also while the home zone is away; changing them waits for
// the home zone.

// DefaultKeyRotation is the rotation period of an organization's default
// key: yearly, like AWS managed keys.
const DefaultKeyRotation = 365 * 24 * time.Hour

// MaxTokenTTL bounds a token's expiry (ten years).
const MaxTokenTTL = 10 * 365 * 24 * time.Hour

// Token secrets are "kzt_<token id>_<43 characters of base64url>": the id
// finds the record, and the secret's SHA-256 is compared in constant time.
const (
	tokenSecretPrefix = "kzt_"
	tokenIDBytes      = 8
	tokenSecretBytes  = 32
	maxTokenRestrict  = 64
	maxOrgIDBytes     = 8
)

// ErrNotHomeZone refuses a tenancy change in a zone other than the home
// zone; the API forwards such changes before they get here.
var ErrNotHomeZone = errors.New("organizations and tokens are changed in the home zone only")

// ErrUnauthenticated: the secret names no live token (unknown, revoked,
// expired, malformed). The caller learns nothing more.
var ErrUnauthenticated = errors.New("invalid token")

// CreateOrganizationParams creates an organization. Zero limits take the
// server's defaults.
type CreateOrganizationParams struct {
	Name      string
	KeyQuota  int
	RateLimit float64
	RateBurst int
}

// UpdateOrganizationParams changes an organization's limits; nil fields
// are left alone.
type UpdateOrganizationParams struct {
	Organization string // id
	KeyQuota     *int
	RateLimit    *float64
	RateBurst    *int
}

// CreateTokenParams creates a token of Organization (an id).
type CreateTokenParams struct {
	Organization string
	Role         fsm.Role
	KeyIDs       []string // "default" names the organization's default key
	Tags         []string
	ExpiresIn    time.Duration // 0: never
	Description  string
}

// NewToken is a created token and its secret, which is never shown again.
type NewToken struct {
	Token  *fsm.Token
	Secret string
}

// HomeZone is the zone where organizations and tokens are written.
func (s *Service) HomeZone() string { return s.cfg.HomeZone }

func (s *Service) checkHome() error {
	if s.cfg.HomeZone != s.cfg.Zone {
		return fmt.Errorf("this is zone %s, the home zone is %s: %w", s.cfg.Zone, s.cfg.HomeZone, ErrNotHomeZone)
	}
	return nil
}

// validateOrgName: 1 to 64 of lower-case letters, digits, '-', '_' and
// '.', starting with a letter or digit.
func validateOrgName(name string) error {
	if name == "" || len(name) > fsm.MaxOrganizationName {
		return invalid("organization name must be 1 to %d characters", fsm.MaxOrganizationName)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.'):
		default:
			return invalid("organization name %q: use lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", truncate(name, 64))
		}
	}
	return nil
}

func validateLimits(quota *int, rate *float64, burst *int) error {
	switch {
	case quota != nil && (*quota < 0 || *quota > 100_000_000):
		return invalid("key quota %d is outside 0..100000000 (0: the server's default)", *quota)
	case rate != nil && (*rate != *rate || *rate > 1e9): // NaN or absurd
		return invalid("rate limit must be a number of requests per second up to 1e9 (0: the server's default, negative: none)")
	case burst != nil && (*burst < 0 || *burst > 1_000_000_000):
		return invalid("rate burst %d is outside 0..1000000000 (0: the server's default)", *burst)
	}
	return nil
}

func randomHex(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// CreateOrganization creates an organization and its default key, a
// protected key rotating yearly with a replica in every other zone the
// deployment knows of.
func (s *Service) CreateOrganization(ctx context.Context, p CreateOrganizationParams) (*fsm.Organization, error) {
	if err := s.checkHome(); err != nil {
		return nil, err
	}
	if err := validateOrgName(p.Name); err != nil {
		return nil, err
	}
	if err := validateLimits(&p.KeyQuota, &p.RateLimit, &p.RateBurst); err != nil {
		return nil, err
	}
	if _, ok := s.fsm.OrganizationByName(p.Name); ok {
		return nil, fmt.Errorf("organization %s: %w", p.Name, fsm.ErrOrganizationExists)
	}
	if p.KeyQuota == 0 {
		p.KeyQuota = s.cfg.OrgKeyQuota
	}
	orgID, err := randomHex(s.cfg.Rand, maxOrgIDBytes)
	if err != nil {
		return nil, fmt.Errorf("new organization id: %w", err)
	}
	now := s.now()
	kid, err := kzcrypto.NewKeyID(s.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("new key id: %w", err)
	}
	first, err := s.newVersion(kid, 1, now)
	if err != nil {
		return nil, err
	}
	var replicas []string
	if s.cfg.KnownZones != nil {
		for _, z := range s.cfg.KnownZones() {
			if z != s.cfg.Zone && !slices.Contains(replicas, z) {
				replicas = append(replicas, z)
			}
		}
	}
	slices.Sort(replicas)
	payload := fsm.CreateOrganizationV1{
		Organization: fsm.Organization{
			ID: orgID, Name: p.Name, DefaultKeyID: kid.String(), HomeZone: s.cfg.Zone,
			KeyQuota: p.KeyQuota, RateLimit: p.RateLimit, RateBurst: p.RateBurst,
			CreatedAt: now, UpdatedAt: now,
		},
		DefaultKey: fsm.CreateKeyV1{
			ID:             kid.String(),
			Organization:   orgID,
			Name:           "default",
			Description:    "default key of organization " + p.Name,
			Tags:           []string{},
			Usage:          fsm.UsageSymmetricEncryption,
			Algorithm:      fsm.AlgorithmAES256GCM,
			Origin:         fsm.OriginKeyzone,
			Protected:      true,
			RotationPolicy: rotationPolicy(DefaultKeyRotation, now),
			PrimaryZone:    s.cfg.Zone,
			ReplicaZones:   nonNilStrings(replicas),
			FirstVersion:   first,
			Now:            now,
		},
	}
	res, err := s.proposeTenancy(ctx, fsm.CmdCreateOrganization, payload)
	if outcomeUnknown(err) {
		if o, ok := s.resolveUnknownOrg(ctx, orgID); ok {
			return o, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create organization: %w", err)
	}
	return res.Organization, nil
}

func nonNilStrings(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func (s *Service) resolveUnknownOrg(ctx context.Context, id string) (*fsm.Organization, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.proposer.ConsistentRead(ctx); err != nil {
		return nil, false
	}
	return s.fsm.Organization(id)
}

// proposeTenancy commits a tenancy command and returns its result.
func (s *Service) proposeTenancy(ctx context.Context, t fsm.CommandType, payload any) (fsm.Result, error) {
	cmd, err := fsm.NewCommand(t, payload)
	if err != nil {
		return fsm.Result{}, err
	}
	res, _, err := s.proposer.Propose(ctx, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	if res.Err != nil {
		return fsm.Result{}, res.Err
	}
	return res, nil
}

// UpdateOrganization changes an organization's quota or rate limit.
func (s *Service) UpdateOrganization(ctx context.Context, p UpdateOrganizationParams) (*fsm.Organization, error) {
	if err := s.checkHome(); err != nil {
		return nil, err
	}
	if err := validateLimits(p.KeyQuota, p.RateLimit, p.RateBurst); err != nil {
		return nil, err
	}
	if p.KeyQuota != nil && *p.KeyQuota == 0 {
		q := s.cfg.OrgKeyQuota
		p.KeyQuota = &q
	}
	res, err := s.proposeTenancy(ctx, fsm.CmdUpdateOrganization, fsm.UpdateOrganizationV1{
		ID: p.Organization, KeyQuota: p.KeyQuota, RateLimit: p.RateLimit, RateBurst: p.RateBurst, Now: s.now(),
	})
	if err != nil {
		return nil, fmt.Errorf("update organization: %w", err)
	}
	return res.Organization, nil
}

// ListOrganizations returns every organization, by name, as this node
// knows them (organizations are global: every zone has them all).
func (s *Service) ListOrganizations(ctx context.Context) ([]*fsm.Organization, error) {
	if err := s.readTenancy(ctx); err != nil {
		return nil, err
	}
	return s.fsm.Organizations(), nil
}

// readTenancy makes a read of tenancy records consistent in the home
// zone; elsewhere the records are as fresh as replication made them.
func (s *Service) readTenancy(ctx context.Context) error {
	if s.cfg.HomeZone != s.cfg.Zone {
		return nil
	}
	return s.proposer.ConsistentRead(ctx)
}

// Organization returns the organization named by id or name.
func (s *Service) Organization(ctx context.Context, ref string) (*fsm.Organization, error) {
	if err := s.readTenancy(ctx); err != nil {
		return nil, err
	}
	if o, ok := s.fsm.Organization(ref); ok {
		return o, nil
	}
	if o, ok := s.fsm.OrganizationByName(ref); ok {
		return o, nil
	}
	return nil, fmt.Errorf("organization %s: %w", truncate(ref, 64), fsm.ErrOrganizationNotFound)
}

// CreateToken makes a token of an organization and returns its secret,
// which is stored nowhere: only its SHA-256 is.
func (s *Service) CreateToken(ctx context.Context, p CreateTokenParams) (NewToken, error) {
	if err := s.checkHome(); err != nil {
		return NewToken{}, err
	}
	org, ok := s.fsm.Organization(p.Organization)
	if !ok {
		return NewToken{}, fmt.Errorf("organization %s: %w", truncate(p.Organization, 64), fsm.ErrOrganizationNotFound)
	}
	if !p.Role.Valid() {
		return NewToken{}, invalid("role %q: want org-admin, key-admin, crypto-user or auditor", truncate(string(p.Role), 64))
	}
	if (len(p.KeyIDs) > 0 || len(p.Tags) > 0) && p.Role != fsm.RoleCryptoUser {
		return NewToken{}, invalid("key_ids and tags restrict crypto-user tokens only")
	}
	if len(p.KeyIDs) > maxTokenRestrict {
		return NewToken{}, invalid("%d key ids, at most %d", len(p.KeyIDs), maxTokenRestrict)
	}
	keyIDs := make([]string, 0, len(p.KeyIDs))
	for _, id := range p.KeyIDs {
		if id == "default" {
			id = org.DefaultKeyID
		}
		if _, err := parseKeyID(id); err != nil {
			return NewToken{}, invalid("key_ids: %q is not a key id", truncate(id, 64))
		}
		if !slices.Contains(keyIDs, id) {
			keyIDs = append(keyIDs, id)
		}
	}
	slices.Sort(keyIDs)
	tags, err := normalizeTags(p.Tags)
	if err != nil {
		return NewToken{}, err
	}
	if err := validateText("description", p.Description, maxDescriptionLen); err != nil {
		return NewToken{}, err
	}
	if p.ExpiresIn < 0 || p.ExpiresIn > MaxTokenTTL {
		return NewToken{}, invalid("expires_in %s is outside 0..%s", p.ExpiresIn, MaxTokenTTL)
	}
	id, err := randomHex(s.cfg.Rand, tokenIDBytes)
	if err != nil {
		return NewToken{}, fmt.Errorf("new token id: %w", err)
	}
	raw := make([]byte, tokenSecretBytes)
	if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
		return NewToken{}, fmt.Errorf("new token secret: %w", err)
	}
	secret := tokenSecretPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(raw)
	clear(raw)
	hash := sha256.Sum256([]byte(secret))
	now := s.now()
	t := fsm.Token{
		ID: id, Organization: org.ID, Role: p.Role, SecretHash: hash[:],
		KeyIDs: keyIDs, Tags: tags, Description: p.Description, HomeZone: s.cfg.Zone,
		CreatedAt: now,
	}
	if len(t.Tags) == 0 {
		t.Tags = nil
	}
	if len(t.KeyIDs) == 0 {
		t.KeyIDs = nil
	}
	if p.ExpiresIn > 0 {
		t.ExpiresAt = now + int64(p.ExpiresIn)
	}
	res, err := s.proposeTenancy(ctx, fsm.CmdCreateToken, fsm.CreateTokenV1{Token: t})
	if outcomeUnknown(err) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if s.proposer.ConsistentRead(rctx) == nil {
			if got, ok := s.fsm.Token(id); ok {
				return NewToken{Token: got, Secret: secret}, nil
			}
		}
	}
	if err != nil {
		return NewToken{}, fmt.Errorf("create token: %w", err)
	}
	return NewToken{Token: res.Token, Secret: secret}, nil
}

// ListTokens returns the organization's tokens (revoked ones too), never
// a secret.
func (s *Service) ListTokens(ctx context.Context, org string) ([]*fsm.Token, error) {
	if err := s.readTenancy(ctx); err != nil {
		return nil, err
	}
	return s.fsm.Tokens(org), nil
}

// RevokeToken revokes a token of the organization. Every zone refuses it
// once the revocation has reached it through the change log.
func (s *Service) RevokeToken(ctx context.Context, org, id string) (*fsm.Token, error) {
	if err := s.checkHome(); err != nil {
		return nil, err
	}
	res, err := s.proposeTenancy(ctx, fsm.CmdRevokeToken, fsm.RevokeTokenV1{Organization: org, TokenID: id, Now: s.now()})
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	return res.Token, nil
}

// Authenticate returns the live token whose secret this is, and its
// organization, from this node's state. The stored hash is compared in
// constant time; every failure is the one ErrUnauthenticated. A token id
// this node does not know may be one its state has not caught up with (a
// node just restarted replays its log only once it hears from its
// leader): it then catches up first, within CatchUpWait, and returns the
// catch-up's error (a 503 for the caller) when it can't, rather than call
// a valid token invalid.
func (s *Service) Authenticate(ctx context.Context, secret string) (*fsm.Token, *fsm.Organization, error) {
	rest, ok := strings.CutPrefix(secret, tokenSecretPrefix)
	if !ok {
		return nil, nil, ErrUnauthenticated
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*tokenIDBytes {
		return nil, nil, ErrUnauthenticated
	}
	t, ok := s.fsm.Token(id)
	if !ok {
		if err := s.catchUp.wait(ctx, s.catchUpOnce); err != nil {
			return nil, nil, fmt.Errorf("this node could not catch up with its zone to check the token: %w", err)
		}
		t, ok = s.fsm.Token(id)
	}
	sum := sha256.Sum256([]byte(secret))
	if !ok || subtle.ConstantTimeCompare(sum[:], t.SecretHash) != 1 {
		return nil, nil, ErrUnauthenticated
	}
	if t.Revoked() || t.Expired(s.now()) {
		return nil, nil, ErrUnauthenticated
	}
	org, ok := s.fsm.Organization(t.Organization)
	if !ok {
		return nil, nil, ErrUnauthenticated
	}
	return t, org, nil
}

// catchUpOnce brings the local state up to the zone's commit index.
func (s *Service) catchUpOnce() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CatchUpWait)
	defer cancel()
	return s.proposer.ConsistentRead(ctx)
}

// sharedCatchUp runs one catch-up at a time and lets every caller that
// arrives meanwhile wait for it: requests with unknown token ids, which
// anyone can send, cost the zone at most one consistent read at a time.
type sharedCatchUp struct {
	mu  sync.Mutex
	cur *catchUpCall
}

type catchUpCall struct {
	done chan struct{}
	err  error
}

func (c *sharedCatchUp) wait(ctx context.Context, run func() error) error {
	c.mu.Lock()
	call := c.cur
	if call == nil {
		call = &catchUpCall{done: make(chan struct{})}
		c.cur = call
		go func() {
			call.err = run()
			c.mu.Lock()
			c.cur = nil
			c.mu.Unlock()
			close(call.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TokenFilter returns the crypto restriction of a token, nil when it may
// use every key of its organization.
func TokenFilter(t *fsm.Token) KeyFilter {
	if t == nil || (len(t.KeyIDs) == 0 && len(t.Tags) == 0) {
		return nil
	}
	return t.MayUse
}
