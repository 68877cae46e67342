package fsm

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Tenancy in the state machine: organizations, tokens, the per
// organization count of primary keys its quota bounds, and the default
// key rules. The records are written in their home zone only (commands
// 20 to 23) and reach every other zone through the home zone's change
// log (applyTenancyEntry). See DESIGN.md, "Tenancy".

// tenancy is the part of the state holding organizations and tokens.
type tenancy struct {
	orgs      map[string]*Organization       // by id; immutable values
	orgByName map[string]string              // organization id by name
	tokens    map[string]*Token              // by id; immutable values
	orgTokens map[string]map[string]struct{} // token ids per organization
	// primaries counts, per organization, the live keys that are not
	// replicas in this zone (every key with zone ""), default keys
	// aside: what its KeyQuota bounds. Kept exact by putKey and
	// removeKey, and rebuilt by Restore.
	primaries map[string]int
}

func newTenancy() tenancy {
	return tenancy{
		orgs:      make(map[string]*Organization),
		orgByName: make(map[string]string),
		tokens:    make(map[string]*Token),
		orgTokens: make(map[string]map[string]struct{}),
		primaries: make(map[string]int),
	}
}

// Quota counter.

// counted reports whether k counts against its organization's quota in
// this zone: a key this zone holds the lifecycle of, not a default key.
func (s *state) counted(k *Key) bool { return !k.Default && !k.IsReplicaIn(s.zone) }

func (s *state) count(k *Key) {
	if s.counted(k) {
		s.primaries[k.Organization]++
	}
}

func (s *state) uncount(k *Key) {
	if !s.counted(k) {
		return
	}
	if n := s.primaries[k.Organization] - 1; n > 0 {
		s.primaries[k.Organization] = n
	} else {
		delete(s.primaries, k.Organization)
	}
}

// putKey stores k as the live value of its id (new or replacing the
// previous value) and keeps the quota counter exact. Every write of
// s.keys goes through it, and every removal through removeKey.
func (s *state) putKey(k *Key) {
	old := s.keys[k.ID]
	s.keys[k.ID] = k
	s.due.set(k, s.zone)
	if old != nil && old.Organization == k.Organization && s.counted(old) == s.counted(k) {
		return // the common case: a change that moves nothing
	}
	if old != nil {
		s.uncount(old)
	}
	s.count(k)
}

// checkQuota refuses a new key k when its organization has a record with
// a quota and already holds that many counted keys in this zone.
// Organizations without a record (the legacy "default") have no quota.
func (s *state) checkQuota(k *Key) error {
	if !s.counted(k) {
		return nil
	}
	o, ok := s.orgs[k.Organization]
	if !ok || o.KeyQuota <= 0 {
		return nil
	}
	if n := s.primaries[k.Organization]; n >= o.KeyQuota {
		zone := s.zone
		if zone == "" {
			zone = "(single zone)"
		}
		return fmt.Errorf("create key %s: organization %s holds %d keys in zone %s, its quota is %d: %w",
			k.ID, o.ID, n, zone, o.KeyQuota, ErrQuotaExceeded)
	}
	return nil
}

// Default key rules.

func defaultKeyRefused(k *Key, what string) error {
	return fmt.Errorf("%s key %s: %w", what, k.ID, ErrDefaultKey)
}

// checkDefaultReplicas refuses a replica set that drops a zone the
// default key k has: every zone keeps its copy of the default key.
func checkDefaultReplicas(k *Key, zones []string) error {
	if !k.Default {
		return nil
	}
	for _, z := range k.ReplicaZones {
		if !slices.Contains(zones, z) {
			return fmt.Errorf("set replica zones of key %s: zone %s would lose the default key: %w",
				k.ID, z, ErrDefaultKey)
		}
	}
	return nil
}

// Indexes.

// putOrganization stores o (new or a newer generation of a stored one)
// and keeps the name index. Names are unique where records are written,
// but records replicated from two zones could share one: the index then
// names the smallest id, a function of the set of records alone, so a
// node that restored a snapshot answers like one that applied the log.
func (s *state) putOrganization(o *Organization) {
	old, had := s.orgs[o.ID]
	s.orgs[o.ID] = o
	if had && old.Name != o.Name && s.orgByName[old.Name] == o.ID {
		delete(s.orgByName, old.Name)
		for _, other := range s.orgs { // a rename: never made by Apply today
			if id, ok := s.orgByName[old.Name]; other.Name == old.Name && (!ok || other.ID < id) {
				s.orgByName[old.Name] = other.ID
			}
		}
	}
	if id, taken := s.orgByName[o.Name]; !taken || o.ID < id {
		s.orgByName[o.Name] = o.ID
	}
}

// putToken stores t and keeps the per-organization index.
func (s *state) putToken(t *Token) {
	if old, ok := s.tokens[t.ID]; ok && old.Organization != t.Organization {
		s.unindexToken(old)
	}
	s.tokens[t.ID] = t
	ids := s.orgTokens[t.Organization]
	if ids == nil {
		ids = make(map[string]struct{})
		s.orgTokens[t.Organization] = ids
	}
	ids[t.ID] = struct{}{}
}

func (s *state) unindexToken(t *Token) {
	if ids := s.orgTokens[t.Organization]; ids != nil {
		delete(ids, t.ID)
		if len(ids) == 0 {
			delete(s.orgTokens, t.Organization)
		}
	}
}

// Change log.

func orgSlot(id string) string   { return orgSlotPrefix + id }
func tokenSlot(id string) string { return tokenSlotPrefix + id }

// isTenancySlot reports whether a change-log slot name is a tenancy
// record's, which no key id may take.
func isTenancySlot(id string) bool {
	return strings.HasPrefix(id, orgSlotPrefix) || strings.HasPrefix(id, tokenSlotPrefix)
}

// logOrganization and logToken put a record in this zone's change log
// (one slot per record, compacted like keys). A single-zone state
// machine has no change log reader and logs nothing, as for keys.
func (s *state) logOrganization(o *Organization) {
	if s.zone != "" {
		s.appendChange(ChangeEntry{KeyID: orgSlot(o.ID), Organization: o})
	}
}

func (s *state) logToken(t *Token) {
	if s.zone != "" {
		s.appendChange(ChangeEntry{KeyID: tokenSlot(t.ID), Token: t})
	}
}

// wellFormedEntry checks the shape of a change-log entry: exactly one of
// Key, Tombstone, Organization and Token, in the slot its record names.
func wellFormedEntry(e *ChangeEntry) bool {
	n := 0
	for _, set := range []bool{e.Key != nil, e.Tombstone != nil, e.Organization != nil, e.Token != nil} {
		if set {
			n++
		}
	}
	switch {
	case n != 1 || e.KeyID == "":
		return false
	case e.Organization != nil:
		return e.Organization.ID != "" && e.KeyID == orgSlot(e.Organization.ID)
	case e.Token != nil:
		return e.Token.ID != "" && e.Token.Organization != "" && e.KeyID == tokenSlot(e.Token.ID)
	}
	return !isTenancySlot(e.KeyID)
}

// applyTenancyEntry applies an organization or token record from
// source's change log: only a record whose home zone is source (its
// writer), only in another zone than its home, and only when this zone
// holds nothing of it or an older generation. It reports whether it did.
func (s *state) applyTenancyEntry(e ChangeEntry, source string) bool {
	switch {
	case e.Organization != nil:
		o := *e.Organization
		if o.HomeZone != source || o.HomeZone == s.zone {
			return false
		}
		if cur, ok := s.orgs[o.ID]; ok && cur.Generation >= o.Generation {
			return false
		}
		o.HomeZone = intern(o.HomeZone)
		s.putOrganization(&o)
	case e.Token != nil:
		t := *e.Token
		if t.HomeZone != source || t.HomeZone == s.zone {
			return false
		}
		if cur, ok := s.tokens[t.ID]; ok && cur.Generation >= t.Generation {
			return false
		}
		internToken(&t)
		s.putToken(&t)
	default:
		return false
	}
	return true
}

func internToken(t *Token) {
	t.Organization = intern(t.Organization)
	t.HomeZone = intern(t.HomeZone)
	t.Role = Role(intern(string(t.Role)))
}

// Commands.

// checkHomeZone refuses a record written outside this zone. A
// single-zone state machine takes any home zone.
func (s *state) checkHomeZone(what, home string) error {
	if s.zone != "" && home != s.zone {
		return invalid("%s has home zone %q, not this zone %q", what, home, s.zone)
	}
	return nil
}

func validateOrganization(o *Organization) error {
	switch {
	case o.ID == "" || strings.Contains(o.ID, "/"):
		return invalid("organization id %q", o.ID)
	case o.Name == "" || utf8.RuneCountInString(o.Name) > MaxOrganizationName:
		return invalid("organization name of %d characters, want 1 to %d", utf8.RuneCountInString(o.Name), MaxOrganizationName)
	case o.KeyQuota < 0:
		return invalid("negative key quota %d", o.KeyQuota)
	case o.RateBurst < 0:
		return invalid("negative rate burst %d", o.RateBurst)
	}
	return nil
}

// sameCreation reports whether a stored organization is the one a
// (retried) create proposed: the proposer chose its id, its name, its
// creation time and its default key's id, so a match on all of them is a
// repeat of the same proposal, even if the organization changed since.
func sameCreation(cur *Organization, o *Organization, defaultKeyID string) bool {
	return cur.ID == o.ID && cur.Name == o.Name && cur.HomeZone == o.HomeZone &&
		cur.CreatedAt == o.CreatedAt && cur.DefaultKeyID == defaultKeyID
}

// applyCreateOrganization creates an organization and its default key
// (through applyCreate, like CmdCreateKey, with Default and Protected
// set). A repeat of the same creation returns the stored records.
func applyCreateOrganization(s *state, index uint64, p *CreateOrganizationV1) Result {
	o := p.Organization
	dk := p.DefaultKey
	if o.CreatedAt == 0 {
		o.CreatedAt = dk.Now
	}
	if err := validateOrganization(&o); err != nil {
		return Result{Err: fmt.Errorf("create organization: %w", err)}
	}
	if err := s.checkHomeZone("organization "+o.ID, o.HomeZone); err != nil {
		return Result{Err: fmt.Errorf("create organization: %w", err)}
	}
	if cur, ok := s.orgs[o.ID]; ok {
		if sameCreation(cur, &o, dk.ID) {
			k := s.keys[cur.DefaultKeyID] // nil if since moved away or gone
			return Result{Organization: cur, Key: k}
		}
		return Result{Err: fmt.Errorf("organization %s: %w", o.ID, ErrOrganizationExists)}
	}
	if id, ok := s.orgByName[o.Name]; ok {
		return Result{Err: fmt.Errorf("organization name %q is taken by %s: %w", o.Name, id, ErrOrganizationExists)}
	}
	if err := s.validateDefaultKey(&o, &dk); err != nil {
		return Result{Err: fmt.Errorf("create organization %s: %w", o.ID, err)}
	}
	dk.Protected = true
	res := applyCreate(s, index, &dk, true)
	if res.Err != nil {
		return Result{Err: fmt.Errorf("create organization %s: %w", o.ID, res.Err)}
	}
	o.DefaultKeyID = dk.ID
	o.HomeZone = intern(o.HomeZone)
	o.UpdatedAt = o.CreatedAt
	o.Generation = 1
	s.putOrganization(&o)
	s.logOrganization(&o)
	return Result{Organization: &o, Key: res.Key}
}

// validateDefaultKey checks what is particular to a default key; the
// rest is applyCreate's.
func (s *state) validateDefaultKey(o *Organization, dk *CreateKeyV1) error {
	switch {
	case dk.Organization != o.ID:
		return invalid("default key of organization %q", dk.Organization)
	case o.DefaultKeyID != "" && o.DefaultKeyID != dk.ID:
		return invalid("default key id %q differs from the default key's %q", o.DefaultKeyID, dk.ID)
	case dk.Origin != OriginKeyzone:
		return invalid("default key of origin %q", dk.Origin)
	case dk.RotationPolicy.Period <= 0:
		return invalid("default key without automatic rotation")
	case dk.Idempotency.Token != "":
		return invalid("default key with an idempotency token")
	case s.zone != "" && dk.PrimaryZone != s.zone:
		return invalid("default key of primary zone %q in zone %q", dk.PrimaryZone, s.zone)
	}
	return nil
}

// applyUpdateOrganization changes an organization's quota or limits in
// its home zone. An update without fields changes nothing.
func applyUpdateOrganization(s *state, _ uint64, p *UpdateOrganizationV1) Result {
	cur, ok := s.orgs[p.ID]
	if !ok {
		return Result{Err: fmt.Errorf("organization %s: %w", p.ID, ErrOrganizationNotFound)}
	}
	if err := s.checkHomeZone("organization "+cur.ID, cur.HomeZone); err != nil {
		return Result{Err: fmt.Errorf("update organization: %w", err)}
	}
	if p.KeyQuota == nil && p.RateLimit == nil && p.RateBurst == nil {
		return Result{Organization: cur}
	}
	o := *cur
	if p.KeyQuota != nil {
		o.KeyQuota = *p.KeyQuota
	}
	if p.RateLimit != nil {
		o.RateLimit = *p.RateLimit
	}
	if p.RateBurst != nil {
		o.RateBurst = *p.RateBurst
	}
	if err := validateOrganization(&o); err != nil {
		return Result{Err: fmt.Errorf("update organization %s: %w", o.ID, err)}
	}
	o.UpdatedAt = p.Now
	o.Generation++
	s.putOrganization(&o)
	s.logOrganization(&o)
	return Result{Organization: &o}
}

// sameToken reports whether a stored token is the one a (retried)
// create proposed, revocation and generation aside.
func sameToken(cur, t *Token) bool {
	return cur.ID == t.ID && cur.Organization == t.Organization && cur.Role == t.Role &&
		slices.Equal(cur.SecretHash, t.SecretHash) && slices.Equal(cur.KeyIDs, t.KeyIDs) &&
		slices.Equal(cur.Tags, t.Tags) && cur.Description == t.Description &&
		cur.HomeZone == t.HomeZone && cur.CreatedAt == t.CreatedAt && cur.ExpiresAt == t.ExpiresAt
}

// applyCreateToken adds a token to an existing organization. A repeat of
// the same creation returns the stored token (revoked since, maybe); a
// different token under a taken id is refused.
func applyCreateToken(s *state, _ uint64, p *CreateTokenV1) Result {
	t := p.Token
	switch {
	case t.ID == "" || strings.Contains(t.ID, "/"):
		return Result{Err: fmt.Errorf("create token: %w", invalid("token id %q", t.ID))}
	case !t.Role.Valid():
		return Result{Err: fmt.Errorf("create token %s: %w", t.ID, invalid("role %q", t.Role))}
	case len(t.SecretHash) != sha256.Size:
		return Result{Err: fmt.Errorf("create token %s: %w", t.ID, invalid("secret hash of %d bytes", len(t.SecretHash)))}
	case t.RevokedAt != 0:
		return Result{Err: fmt.Errorf("create token %s: %w", t.ID, invalid("new token marked revoked"))}
	case t.ExpiresAt != 0 && t.ExpiresAt <= t.CreatedAt:
		return Result{Err: fmt.Errorf("create token %s: %w", t.ID, invalid("expires at %d, not after its creation %d", t.ExpiresAt, t.CreatedAt))}
	}
	if err := s.checkHomeZone("token "+t.ID, t.HomeZone); err != nil {
		return Result{Err: fmt.Errorf("create token: %w", err)}
	}
	if _, ok := s.orgs[t.Organization]; !ok {
		return Result{Err: fmt.Errorf("create token %s: organization %s: %w", t.ID, t.Organization, ErrOrganizationNotFound)}
	}
	if cur, ok := s.tokens[t.ID]; ok {
		if sameToken(cur, &t) {
			return Result{Token: cur}
		}
		return Result{Err: fmt.Errorf("create token: %w", invalid("token id %s is taken", t.ID))}
	}
	internToken(&t)
	t.Generation = 1
	s.putToken(&t)
	s.logToken(&t)
	return Result{Token: &t}
}

// applyRevokeToken revokes a token of the organization. Revoking a
// revoked token changes nothing.
func applyRevokeToken(s *state, _ uint64, p *RevokeTokenV1) Result {
	cur, ok := s.tokens[p.TokenID]
	if !ok || cur.Organization != p.Organization {
		return Result{Err: fmt.Errorf("token %s: %w", p.TokenID, ErrTokenNotFound)}
	}
	if cur.Revoked() {
		return Result{Token: cur}
	}
	if err := s.checkHomeZone("token "+cur.ID, cur.HomeZone); err != nil {
		return Result{Err: fmt.Errorf("revoke token: %w", err)}
	}
	if p.Now <= 0 {
		return Result{Err: fmt.Errorf("revoke token %s: %w", cur.ID, invalid("revocation time %d", p.Now))}
	}
	t := *cur
	t.RevokedAt = p.Now
	t.Generation++
	s.putToken(&t)
	s.logToken(&t)
	return Result{Token: &t}
}

// Snapshots.

// tenancyRecords returns copies of the maps of organizations and tokens
// for a snapshot (the records are shared: immutable).
func (s *state) tenancyRecords() (map[string]*Organization, map[string]*Token) {
	return maps.Clone(s.orgs), maps.Clone(s.tokens)
}

// restoreOrganization adds one snapshot record of an organization.
func (s *state) restoreOrganization(o *Organization) error {
	if o == nil || o.ID == "" || o.Name == "" {
		return fmt.Errorf("organization record without id or name: %w", errSnapshot)
	}
	if _, dup := s.orgs[o.ID]; dup {
		return fmt.Errorf("duplicate organization %q: %w", o.ID, errSnapshot)
	}
	o.HomeZone = intern(o.HomeZone)
	s.putOrganization(o)
	return nil
}

// restoreToken adds one snapshot record of a token.
func (s *state) restoreToken(t *Token) error {
	if t == nil || t.ID == "" || t.Organization == "" {
		return fmt.Errorf("token record without id or organization: %w", errSnapshot)
	}
	if _, dup := s.tokens[t.ID]; dup {
		return fmt.Errorf("duplicate token %q: %w", t.ID, errSnapshot)
	}
	internToken(t)
	s.putToken(t)
	return nil
}

// writeTenancy writes the organizations, then the tokens, sorted by id.
func writeTenancy(w *snapshotWriter, orgs map[string]*Organization, tokens map[string]*Token) error {
	for _, id := range slices.Sorted(maps.Keys(orgs)) {
		if err := w.jsonFrame(frameOrganization, orgs[id]); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(tokens)) {
		if err := w.jsonFrame(frameToken, tokens[id]); err != nil {
			return err
		}
	}
	return nil
}
