package keys

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// Crypto is served from this node's local state, without a Raft round
// trip. A node that does not know a key or version yet (it was just
// created or rotated through another node) catches up with the leader,
// within CatchUpWait, before it answers that it does not exist.

// Encrypt seals a plaintext under the key's current version.
func (s *Service) Encrypt(ctx context.Context, p EncryptParams) (CryptoResult, error) {
	if len(p.Plaintext) > s.cfg.MaxPayload {
		return CryptoResult{}, fmt.Errorf("plaintext is %d bytes, at most %d allowed: %w", len(p.Plaintext), s.cfg.MaxPayload, kzcrypto.ErrPayloadTooLarge)
	}
	ad, err := associatedData(p.Organization, p.Context)
	if err != nil {
		return CryptoResult{}, err
	}
	k, kid, err := s.enabledKey(ctx, p.Organization, p.KeyID, p.Allow)
	if err != nil {
		return CryptoResult{}, err
	}
	return s.seal(k, kid, p.Plaintext, ad)
}

func (s *Service) seal(k *fsm.Key, kid kzcrypto.KeyID, plaintext, ad []byte) (CryptoResult, error) {
	v, ok := k.Version(k.CurrentVersion)
	if !ok {
		return CryptoResult{}, fmt.Errorf("key %s has no current version %d", k.ID, k.CurrentVersion)
	}
	material, err := s.material(kid, v)
	if err != nil {
		return CryptoResult{}, err
	}
	ct, err := s.cipher.Seal(material, kid, v.Number, plaintext, ad)
	if err != nil {
		return CryptoResult{}, err
	}
	return CryptoResult{KeyID: k.ID, KeyVersion: v.Number, Ciphertext: ct}, nil
}

// enabledKey returns the organization's key named id, which must be
// enabled: the key a caller names for encrypt, data keys, a re-encrypt's
// destination, or as the key a ciphertext must belong to.
func (s *Service) enabledKey(ctx context.Context, org, id string, allow KeyFilter) (*fsm.Key, kzcrypto.KeyID, error) {
	kid, err := parseKeyID(id)
	if err != nil {
		return nil, kid, err
	}
	k, ok := s.lookup(ctx, org, id, 0)
	if !ok {
		return nil, kid, fmt.Errorf("key %s: %w", id, fsm.ErrKeyNotFound)
	}
	if allow != nil && !allow(k) {
		return nil, kid, fmt.Errorf("key %s: %w", id, ErrKeyNotAllowed)
	}
	if k.State != fsm.KeyStateEnabled {
		return nil, kid, fmt.Errorf("key %s is %s: %w", id, k.State, ErrKeyDisabled)
	}
	return k, kid, nil
}

// lookup finds the organization's key, knowing version (if non-zero),
// catching up with the leader once if the local state lacks either.
func (s *Service) lookup(ctx context.Context, org, id string, version uint32) (*fsm.Key, bool) {
	found := func() (*fsm.Key, bool) {
		k, ok := s.fsm.Key(id)
		if !ok || k.Organization != org {
			return nil, false
		}
		if version != 0 {
			if _, ok := k.Version(version); !ok {
				return nil, false
			}
		}
		return k, true
	}
	if k, ok := found(); ok {
		return k, true
	}
	if s.fsm.IsTombstoned(id) {
		return nil, false
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CatchUpWait)
	defer cancel()
	if err := s.proposer.ConsistentRead(cctx); err != nil {
		s.logger.Debug("catch-up before not found failed", "key_id", id, "error", err)
	}
	return found()
}

// Decrypt opens a ciphertext. Every failure that concerns the ciphertext
// itself (malformed, tampered, wrong context, unknown key or version in
// it, another key's) is the one ErrDecrypt; only a key named by the
// caller that does not exist (ErrKeyNotFound), or a key that is not
// enabled (ErrKeyDisabled), is told apart, and a named key is judged
// before the ciphertext is read.
func (s *Service) Decrypt(ctx context.Context, p DecryptParams) (CryptoResult, error) {
	ad, err := associatedData(p.Organization, p.Context)
	if err != nil {
		return CryptoResult{}, err
	}
	k, err := s.keyForDecrypt(ctx, p.Organization, p.KeyID, p.Ciphertext, p.Allow)
	if err != nil {
		return CryptoResult{}, err
	}
	return s.open(k, p.Ciphertext, ad)
}

// keyForDecrypt returns the enabled key whose material opens ct. A key
// named by the caller is settled first, from the state alone: missing (or
// another organization's) is ErrKeyNotFound and not enabled is
// ErrKeyDisabled, whatever ct holds. Only then is ct looked at, and every
// problem with it is the one ErrDecrypt, so the answer never depends on
// which part of a ciphertext is wrong.
func (s *Service) keyForDecrypt(ctx context.Context, org, named string, ct []byte, allow KeyFilter) (*fsm.Key, error) {
	if named != "" {
		if _, _, err := s.enabledKey(ctx, org, named, allow); err != nil {
			return nil, err
		}
	}
	if len(ct) > kzcrypto.HeaderSize+s.cfg.MaxPayload+16 {
		return nil, fmt.Errorf("ciphertext is %d bytes, longer than any this server makes: %w", len(ct), kzcrypto.ErrPayloadTooLarge)
	}
	h, _, err := kzcrypto.ParseHeader(ct)
	if err != nil {
		return nil, kzcrypto.ErrDecrypt
	}
	id := h.KeyID.String()
	if named != "" && named != id {
		return nil, kzcrypto.ErrDecrypt
	}
	k, ok := s.lookup(ctx, org, id, h.Version)
	if !ok {
		return nil, kzcrypto.ErrDecrypt
	}
	if allow != nil && !allow(k) {
		return nil, fmt.Errorf("key %s: %w", k.ID, ErrKeyNotAllowed)
	}
	if k.State != fsm.KeyStateEnabled {
		return nil, fmt.Errorf("key %s is %s: %w", k.ID, k.State, ErrKeyDisabled)
	}
	return k, nil
}

func (s *Service) open(k *fsm.Key, ct, ad []byte) (CryptoResult, error) {
	h, _, err := kzcrypto.ParseHeader(ct)
	if err != nil {
		return CryptoResult{}, kzcrypto.ErrDecrypt
	}
	v, ok := k.Version(h.Version)
	if !ok || v.State != fsm.VersionStateEnabled {
		return CryptoResult{}, kzcrypto.ErrDecrypt
	}
	material, err := s.material(h.KeyID, v)
	if err != nil {
		return CryptoResult{}, err
	}
	pt, err := s.cipher.Open(material, ct, ad)
	if err != nil {
		return CryptoResult{}, err
	}
	return CryptoResult{KeyID: k.ID, KeyVersion: v.Number, Plaintext: pt}, nil
}

// GenerateDataKey returns a fresh data key, wrapped under the key's
// current version and, unless WithoutPlaintext, in plaintext once.
func (s *Service) GenerateDataKey(ctx context.Context, p DataKeyParams) (CryptoResult, error) {
	if p.KeySizeBits == 0 {
		p.KeySizeBits = 256
	}
	if p.KeySizeBits != 128 && p.KeySizeBits != 256 {
		return CryptoResult{}, invalid("key size %d is not 128 or 256", p.KeySizeBits)
	}
	ad, err := associatedData(p.Organization, p.Context)
	if err != nil {
		return CryptoResult{}, err
	}
	k, kid, err := s.enabledKey(ctx, p.Organization, p.KeyID, p.Allow)
	if err != nil {
		return CryptoResult{}, err
	}
	dk, err := s.cipher.GenerateDataKey(p.KeySizeBits)
	if err != nil {
		return CryptoResult{}, err
	}
	res, err := s.seal(k, kid, dk, ad)
	if err != nil {
		return CryptoResult{}, err
	}
	if p.WithoutPlaintext {
		clear(dk)
	} else {
		res.Plaintext = dk
	}
	return res, nil
}

// ReEncrypt opens a ciphertext and seals its plaintext again under the
// destination key's current version (the source key's by default). The
// plaintext never leaves the service. Keys the caller names (source and
// destination) are judged before the ciphertext, as in Decrypt, so
// nothing is opened for a request that can't succeed.
func (s *Service) ReEncrypt(ctx context.Context, p ReEncryptParams) (CryptoResult, error) {
	ad, err := associatedData(p.Organization, p.Context)
	if err != nil {
		return CryptoResult{}, err
	}
	destAD, err := associatedData(p.Organization, p.DestinationContext)
	if err != nil {
		return CryptoResult{}, err
	}
	if p.DestinationKeyID != "" {
		if _, _, err := s.enabledKey(ctx, p.Organization, p.DestinationKeyID, p.Allow); err != nil {
			return CryptoResult{}, err
		}
	}
	src, err := s.keyForDecrypt(ctx, p.Organization, p.KeyID, p.Ciphertext, p.Allow)
	if err != nil {
		return CryptoResult{}, err
	}
	opened, err := s.open(src, p.Ciphertext, ad)
	if err != nil {
		return CryptoResult{}, err
	}
	defer clear(opened.Plaintext)
	dest := p.DestinationKeyID
	if dest == "" {
		dest = src.ID
	}
	k, kid, err := s.enabledKey(ctx, p.Organization, dest, p.Allow)
	if err != nil {
		return CryptoResult{}, err
	}
	return s.seal(k, kid, opened.Plaintext, destAD)
}

func associatedData(org string, c Context) ([]byte, error) {
	ad, err := kzcrypto.AssociatedData(org, c.Map, c.AssociatedData)
	if err != nil {
		return nil, invalid("give either encryption_context or associated_data, not both")
	}
	return ad, nil
}

// material returns a version's plaintext material, unwrapping it under
// the REK on first use. The cache is checked against the wrapped bytes in
// the current state, so a purged or replaced version is never served from
// it.
func (s *Service) material(kid kzcrypto.KeyID, v fsm.Version) ([]byte, error) {
	if m, ok := s.materials.get(kid, v); ok {
		return m, nil
	}
	if v.RekID != s.rek.ID() {
		return nil, fmt.Errorf("version %d of key %s is wrapped under root key %s, this node has %s", v.Number, kid, v.RekID, s.rek.ID())
	}
	m, err := s.rek.Unwrap(kid, v.Number, v.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap version %d of key %s: %w", v.Number, kid, err)
	}
	s.materials.put(kid, v, m)
	return m, nil
}

type materialKey struct {
	id      kzcrypto.KeyID
	version uint32
}

type materialEntry struct {
	wrapped  []byte
	material []byte
}

// materialCache keeps unwrapped version material in memory only.
type materialCache struct {
	mu sync.RWMutex
	m  map[materialKey]materialEntry
}

func newMaterialCache() *materialCache {
	return &materialCache{m: map[materialKey]materialEntry{}}
}

func (c *materialCache) get(id kzcrypto.KeyID, v fsm.Version) ([]byte, bool) {
	c.mu.RLock()
	e, ok := c.m[materialKey{id, v.Number}]
	c.mu.RUnlock()
	if !ok || !bytes.Equal(e.wrapped, v.Wrapped) {
		return nil, false
	}
	return e.material, true
}

func (c *materialCache) put(id kzcrypto.KeyID, v fsm.Version, material []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[materialKey{id, v.Number}] = materialEntry{wrapped: bytes.Clone(v.Wrapped), material: material}
}

// sweep drops the material of keys that are gone from the state.
func (c *materialCache) sweep(live func(id string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if !live(k.id.String()) {
			// Not cleared in place: a request may still be sealing with it.
			delete(c.m, k)
		}
	}
}

// Run keeps the material cache free of purged keys until ctx is done.
// Every node runs it.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.materials.sweep(func(id string) bool { _, ok := s.fsm.Key(id); return ok })
		}
	}
}
