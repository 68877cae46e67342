// Package apitest provides in-memory fakes of api.KeyService and
// api.ClusterService for tests of the API, the SDK and the CLI. The fakes
// follow the real lifecycle rules closely enough for round trips (create,
// disable, rotate, encrypt then decrypt) and return the real sentinel
// errors, but they are not the service: no Raft, no REK, no replication.
package apitest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// DefaultPendingWindow is the fake's deletion window when none is asked.
const DefaultPendingWindow = 7 * 24 * time.Hour

// Call is one call the fake received: the method name and its parameters
// (the params struct, or for GetKey a GetKeyCall).
type Call struct {
	Method string
	Params any
}

// GetKeyCall is the Params of a recorded GetKey.
type GetKeyCall struct {
	Organization string
	KeyID        string
	Stale        bool
}

// ReplicaCall is the Params of a recorded AddReplica or RemoveReplica.
type ReplicaCall struct {
	Ref  keys.KeyRef
	Zone string
}

// Zone is the fake's own zone: the primary zone of the keys it creates.
// A key Put with another PrimaryZone is a replica, whose replica set can't
// be changed here.
const Zone = "zone-a"

// Keys is an in-memory KeyService. The zero value is not usable; call
// NewKeys. Set the exported fields before serving requests.
type Keys struct {
	// Fail, when set, is called first by every method with its name; a
	// non-nil error is returned as the method's error. It may also panic.
	Fail func(method string) error
	// Now is the fake's clock; nil means time.Now.
	Now func() time.Time
	// MaxPayload is the plaintext limit; 0 means 64 KiB.
	MaxPayload int

	mu    sync.Mutex
	keys  map[string]*fsm.Key
	idem  map[string]string // org/op/token -> key id
	rev   uint64
	seq   uint64
	aead  cipher.AEAD
	calls []Call
}

// NewKeys returns an empty fake whose ciphertexts are sealed under a
// random AES-256-GCM key of its own.
func NewKeys() *Keys {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Keys{keys: map[string]*fsm.Key{}, idem: map[string]string{}, aead: aead}
}

// Calls returns the calls received so far, oldest first.
func (f *Keys) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// LastCall returns the newest call, or a zero Call.
func (f *Keys) LastCall() Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return Call{}
	}
	return f.calls[len(f.calls)-1]
}

// Put stores k as is (tests use it to set up any state); it returns a copy.
func (f *Keys) Put(k fsm.Key) *fsm.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := k
	f.keys[k.ID] = &c
	return &c
}

// begin records the call, consults Fail, and locks the fake; the caller
// unlocks with f.mu.Unlock when err is nil.
func (f *Keys) begin(method string, params any) error {
	f.mu.Lock()
	f.calls = append(f.calls, Call{Method: method, Params: params})
	f.mu.Unlock()
	if f.Fail != nil {
		if err := f.Fail(method); err != nil {
			return err
		}
	}
	f.mu.Lock()
	return nil
}

func (f *Keys) now() int64 {
	if f.Now != nil {
		return f.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// lookup returns the key; f.mu is held.
func (f *Keys) lookup(org, id string) (*fsm.Key, error) {
	k, ok := f.keys[id]
	if !ok || k.Organization != org {
		return nil, fmt.Errorf("key %s: %w", id, fsm.ErrKeyNotFound)
	}
	return k, nil
}

// change applies fn to a copy of the key named by r and stores it with a
// new revision; f.mu is held.
func (f *Keys) change(r keys.KeyRef, fn func(k *fsm.Key, now int64) error) (*fsm.Key, error) {
	old, err := f.lookup(r.Organization, r.KeyID)
	if err != nil {
		return nil, err
	}
	if r.IfRevision != 0 && r.IfRevision != old.Revision {
		return nil, fsm.ErrRevisionMismatch
	}
	k := clone(old)
	now := f.now()
	if err := fn(k, now); err != nil {
		return nil, err
	}
	f.rev++
	k.Revision, k.UpdatedAt = f.rev, now
	f.keys[k.ID] = k
	return clone(k), nil
}

func clone(k *fsm.Key) *fsm.Key {
	c := *k
	c.Tags = slices.Clone(k.Tags)
	c.ReplicaZones = slices.Clone(k.ReplicaZones)
	c.PendingZones = slices.Clone(k.PendingZones)
	c.Versions = slices.Clone(k.Versions)
	return &c
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), keys.ErrInvalidArgument)
}

// CreateKey implements api.KeyService.
func (f *Keys) CreateKey(ctx context.Context, p keys.CreateParams) (*fsm.Key, error) {
	if err := f.begin("CreateKey", p); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	if p.Name == "" {
		return nil, invalid("name: must not be empty")
	}
	if p.RotationPeriod < 0 {
		return nil, invalid("rotation_period: must not be negative")
	}
	scope := p.Organization + "/create/" + p.IdempotencyKey
	if id, ok := f.idem[scope]; ok && p.IdempotencyKey != "" {
		return clone(f.keys[id]), nil
	}
	for _, k := range f.keys {
		if k.Organization == p.Organization && k.Name == p.Name {
			return nil, fmt.Errorf("name %q: %w", p.Name, fsm.ErrKeyExists)
		}
	}
	f.seq++
	f.rev++
	now := f.now()
	k := &fsm.Key{
		ID:             fmt.Sprintf("00000000-0000-4000-8000-%012d", f.seq),
		Organization:   p.Organization,
		Name:           p.Name,
		Description:    p.Description,
		Tags:           slices.Clone(p.Tags),
		Usage:          or(p.Usage, fsm.UsageSymmetricEncryption),
		Algorithm:      or(p.Algorithm, fsm.AlgorithmAES256GCM),
		Origin:         or(p.Origin, fsm.OriginKeyzone),
		State:          fsm.KeyStateEnabled,
		Protected:      p.Protected,
		Versions:       []fsm.Version{{Number: 1, CreatedAt: now, State: fsm.VersionStateEnabled}},
		CurrentVersion: 1,
		PrimaryZone:    Zone,
		ReplicaZones:   slices.Clone(p.ReplicaZones),
		CreatedAt:      now,
		UpdatedAt:      now,
		Revision:       f.rev,
	}
	if p.RotationPeriod > 0 {
		k.RotationPolicy = fsm.RotationPolicy{Period: int64(p.RotationPeriod), NextRotationAt: now + int64(p.RotationPeriod)}
	}
	f.keys[k.ID] = k
	if p.IdempotencyKey != "" {
		f.idem[scope] = k.ID
	}
	return clone(k), nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// GetKey implements api.KeyService.
func (f *Keys) GetKey(ctx context.Context, org, id string, stale bool) (*fsm.Key, error) {
	if err := f.begin("GetKey", GetKeyCall{Organization: org, KeyID: id, Stale: stale}); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	k, err := f.lookup(org, id)
	if err != nil {
		return nil, err
	}
	return clone(k), nil
}

// ListKeys implements api.KeyService: keys in id order, filtered, paged
// by id.
func (f *Keys) ListKeys(ctx context.Context, p keys.ListParams) (keys.ListResult, error) {
	if err := f.begin("ListKeys", p); err != nil {
		return keys.ListResult{}, err
	}
	defer f.mu.Unlock()
	size := p.PageSize
	switch {
	case size == 0:
		size = 100
	case size > 1000:
		return keys.ListResult{}, invalid("page_size: at most 1000")
	}
	ids := make([]string, 0, len(f.keys))
	for id := range f.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var res keys.ListResult
	for _, id := range ids {
		k := f.keys[id]
		if k.Organization != p.Organization || id <= p.PageToken ||
			(p.Name != "" && k.Name != p.Name) ||
			(p.Tag != "" && !slices.Contains(k.Tags, p.Tag)) ||
			(p.State != "" && k.State != p.State) {
			continue
		}
		if len(res.Keys) == size {
			res.NextPageToken = res.Keys[len(res.Keys)-1].ID
			break
		}
		res.Keys = append(res.Keys, clone(k))
	}
	return res, nil
}

// UpdateKey implements api.KeyService.
func (f *Keys) UpdateKey(ctx context.Context, p keys.UpdateParams) (*fsm.Key, error) {
	if err := f.begin("UpdateKey", p); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	if p.Name != nil && *p.Name == "" {
		return nil, invalid("name: must not be empty")
	}
	if p.RotationPeriod != nil && *p.RotationPeriod < 0 {
		return nil, invalid("rotation_period: must not be negative")
	}
	return f.change(p.KeyRef, func(k *fsm.Key, now int64) error {
		if p.Name != nil {
			k.Name = *p.Name
		}
		if p.Description != nil {
			k.Description = *p.Description
		}
		if p.Tags != nil {
			k.Tags = slices.Clone(*p.Tags)
		}
		if p.RotationPeriod != nil {
			k.RotationPolicy = fsm.RotationPolicy{}
			if *p.RotationPeriod > 0 {
				k.RotationPolicy = fsm.RotationPolicy{Period: int64(*p.RotationPeriod), NextRotationAt: now + int64(*p.RotationPeriod)}
			}
		}
		return nil
	})
}

// transition moves a key from one of the states in from to state to.
func (f *Keys) transition(method, op string, r keys.KeyRef, to fsm.KeyState, from ...fsm.KeyState) (*fsm.Key, error) {
	if err := f.begin(method, r); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	return f.change(r, func(k *fsm.Key, now int64) error {
		if !slices.Contains(from, k.State) {
			return &fsm.TransitionError{KeyID: k.ID, From: k.State, Op: op}
		}
		k.State, k.DeletionAt = to, 0
		return nil
	})
}

// EnableKey implements api.KeyService.
func (f *Keys) EnableKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error) {
	return f.transition("EnableKey", "enable", r, fsm.KeyStateEnabled, fsm.KeyStateDisabled, fsm.KeyStateEnabled)
}

// DisableKey implements api.KeyService.
func (f *Keys) DisableKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error) {
	return f.transition("DisableKey", "disable", r, fsm.KeyStateDisabled, fsm.KeyStateEnabled, fsm.KeyStateDisabled)
}

// CancelDeletion implements api.KeyService.
func (f *Keys) CancelDeletion(ctx context.Context, r keys.KeyRef) (*fsm.Key, error) {
	return f.transition("CancelDeletion", "cancel deletion of", r, fsm.KeyStateDisabled, fsm.KeyStatePendingDeletion)
}

// ProtectKey implements api.KeyService.
func (f *Keys) ProtectKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error) {
	return f.setProtected("ProtectKey", r, true)
}

// UnprotectKey implements api.KeyService.
func (f *Keys) UnprotectKey(ctx context.Context, r keys.KeyRef) (*fsm.Key, error) {
	return f.setProtected("UnprotectKey", r, false)
}

func (f *Keys) setProtected(method string, r keys.KeyRef, on bool) (*fsm.Key, error) {
	if err := f.begin(method, r); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	return f.change(r, func(k *fsm.Key, now int64) error {
		k.Protected = on
		return nil
	})
}

// RotateKey implements api.KeyService.
func (f *Keys) RotateKey(ctx context.Context, p keys.RotateParams) (*fsm.Key, error) {
	if err := f.begin("RotateKey", p); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	scope := p.Organization + "/rotate/" + p.IdempotencyKey
	if id, ok := f.idem[scope]; ok && p.IdempotencyKey != "" && id == p.KeyID {
		return clone(f.keys[id]), nil
	}
	k, err := f.change(p.KeyRef, func(k *fsm.Key, now int64) error {
		if k.State != fsm.KeyStateEnabled {
			return &fsm.TransitionError{KeyID: k.ID, From: k.State, Op: "rotate"}
		}
		n := uint32(len(k.Versions)) + 1
		k.Versions = append(k.Versions, fsm.Version{Number: n, CreatedAt: now, State: fsm.VersionStateEnabled})
		k.CurrentVersion = n
		return nil
	})
	if err == nil && p.IdempotencyKey != "" {
		f.idem[scope] = k.ID
	}
	return k, err
}

// ScheduleDeletion implements api.KeyService.
func (f *Keys) ScheduleDeletion(ctx context.Context, p keys.ScheduleDeletionParams) (*fsm.Key, error) {
	if err := f.begin("ScheduleDeletion", p); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	w := p.PendingWindow
	switch {
	case w == 0:
		w = DefaultPendingWindow
	case w < 24*time.Hour || w > 30*24*time.Hour:
		return nil, invalid("pending_window: must be between 24h and 720h")
	}
	return f.change(p.KeyRef, func(k *fsm.Key, now int64) error {
		if k.Protected {
			return fmt.Errorf("key %s: %w", k.ID, fsm.ErrKeyProtected)
		}
		if k.State != fsm.KeyStateEnabled && k.State != fsm.KeyStateDisabled {
			return &fsm.TransitionError{KeyID: k.ID, From: k.State, Op: "schedule deletion of"}
		}
		k.State, k.DeletionAt = fsm.KeyStatePendingDeletion, now+int64(w)
		return nil
	})
}

// AddReplica implements api.KeyService: it adds zone to the key's
// replica zones (kept sorted; adding a zone twice changes nothing but the
// revision).
func (f *Keys) AddReplica(ctx context.Context, r keys.KeyRef, zone string) (*fsm.Key, error) {
	return f.changeReplicas("AddReplica", r, zone, func(zones []string) []string {
		if !slices.Contains(zones, zone) {
			zones = append(zones, zone)
		}
		slices.Sort(zones)
		return zones
	})
}

// RemoveReplica implements api.KeyService: it drops zone from the key's
// replica zones, and from the zones a pending version waits for.
func (f *Keys) RemoveReplica(ctx context.Context, r keys.KeyRef, zone string) (*fsm.Key, error) {
	return f.changeReplicas("RemoveReplica", r, zone, func(zones []string) []string {
		return slices.DeleteFunc(zones, func(z string) bool { return z == zone })
	})
}

func (f *Keys) changeReplicas(method string, r keys.KeyRef, zone string, fn func([]string) []string) (*fsm.Key, error) {
	if err := f.begin(method, ReplicaCall{Ref: r, Zone: zone}); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	if zone == "" {
		return nil, invalid("zone: must not be empty")
	}
	return f.change(r, func(k *fsm.Key, now int64) error {
		if k.PrimaryZone != Zone {
			return &fsm.NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}
		}
		if zone == k.PrimaryZone {
			return invalid("replica zone %s is this key's primary zone", zone)
		}
		k.ReplicaZones = fn(k.ReplicaZones)
		if k.PendingVersion != 0 {
			k.PendingZones = slices.DeleteFunc(k.PendingZones, func(z string) bool { return !slices.Contains(k.ReplicaZones, z) })
			if len(k.PendingZones) == 0 {
				k.CurrentVersion, k.PendingVersion, k.PendingZones = k.PendingVersion, 0, nil
			}
		}
		return nil
	})
}

// Fake ciphertext: magic | key id length (1) | key id | version (4) |
// nonce | AES-GCM(plaintext) with the header and context as AAD.
var magic = []byte("fk1")

func encodeContext(c keys.Context) ([]byte, error) {
	switch {
	case len(c.Map) > 0 && len(c.AssociatedData) > 0:
		return nil, invalid("encryption_context and associated_data: give one, not both")
	case len(c.AssociatedData) > 0:
		return append([]byte("ad:"), c.AssociatedData...), nil
	case len(c.Map) > 0:
		b, err := json.Marshal(c.Map) // sorted keys: canonical
		if err != nil {
			return nil, err
		}
		return append([]byte("map:"), b...), nil
	}
	return nil, nil
}

// usable returns the key when the caller may use it for crypto and it
// may serve crypto; f.mu is held. Like the service, it judges the
// caller's restriction (allow, nil for none) before the key's state.
func (f *Keys) usable(org, id string, allow keys.KeyFilter) (*fsm.Key, error) {
	k, err := f.lookup(org, id)
	if err != nil {
		return nil, err
	}
	if allow != nil && !allow(k) {
		return nil, fmt.Errorf("key %s: %w", k.ID, keys.ErrKeyNotAllowed)
	}
	if k.State != fsm.KeyStateEnabled {
		return nil, fmt.Errorf("key %s is %s: %w", k.ID, k.State, keys.ErrKeyDisabled)
	}
	return k, nil
}

// seal encrypts under the key's current version; f.mu is held.
func (f *Keys) seal(org, id string, allow keys.KeyFilter, pt []byte, c keys.Context) (keys.CryptoResult, error) {
	max := f.MaxPayload
	if max == 0 {
		max = 64 << 10
	}
	if len(pt) > max {
		return keys.CryptoResult{}, kzcrypto.ErrPayloadTooLarge
	}
	ad, err := encodeContext(c)
	if err != nil {
		return keys.CryptoResult{}, err
	}
	k, err := f.usable(org, id, allow)
	if err != nil {
		return keys.CryptoResult{}, err
	}
	hdr := append(slices.Clone(magic), byte(len(k.ID)))
	hdr = append(hdr, k.ID...)
	hdr = binary.BigEndian.AppendUint32(hdr, k.CurrentVersion)
	nonce := make([]byte, f.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return keys.CryptoResult{}, err
	}
	out := append(slices.Clone(hdr), nonce...)
	out = f.aead.Seal(out, nonce, pt, append(slices.Clone(hdr), ad...))
	return keys.CryptoResult{KeyID: k.ID, KeyVersion: k.CurrentVersion, Ciphertext: out}, nil
}

// open decrypts; every malformed or mismatched input is ErrDecrypt. A key
// the caller names (wantKey) that it may not use is refused before the
// ciphertext is read, as the service does. f.mu is held.
func (f *Keys) open(org, wantKey string, allow keys.KeyFilter, ct []byte, c keys.Context) (keys.CryptoResult, error) {
	ad, err := encodeContext(c)
	if err != nil {
		return keys.CryptoResult{}, err
	}
	if wantKey != "" && allow != nil {
		if k, err := f.lookup(org, wantKey); err == nil && !allow(k) {
			return keys.CryptoResult{}, fmt.Errorf("key %s: %w", k.ID, keys.ErrKeyNotAllowed)
		}
	}
	if len(ct) < len(magic)+1 || !bytes.Equal(ct[:len(magic)], magic) {
		return keys.CryptoResult{}, kzcrypto.ErrDecrypt
	}
	n := int(ct[len(magic)])
	hdrLen := len(magic) + 1 + n + 4
	if len(ct) < hdrLen+f.aead.NonceSize()+f.aead.Overhead() {
		return keys.CryptoResult{}, kzcrypto.ErrDecrypt
	}
	id := string(ct[len(magic)+1 : len(magic)+1+n])
	version := binary.BigEndian.Uint32(ct[hdrLen-4 : hdrLen])
	if wantKey != "" && id != wantKey {
		return keys.CryptoResult{}, kzcrypto.ErrDecrypt
	}
	k, err := f.lookup(org, id)
	if err != nil {
		return keys.CryptoResult{}, kzcrypto.ErrDecrypt
	}
	if allow != nil && !allow(k) {
		return keys.CryptoResult{}, fmt.Errorf("key %s: %w", k.ID, keys.ErrKeyNotAllowed)
	}
	if k.State != fsm.KeyStateEnabled {
		return keys.CryptoResult{}, fmt.Errorf("key %s is %s: %w", k.ID, k.State, keys.ErrKeyDisabled)
	}
	if _, ok := k.Version(version); !ok {
		return keys.CryptoResult{}, kzcrypto.ErrDecrypt
	}
	nonce := ct[hdrLen : hdrLen+f.aead.NonceSize()]
	pt, err := f.aead.Open(nil, nonce, ct[hdrLen+f.aead.NonceSize():], append(slices.Clone(ct[:hdrLen]), ad...))
	if err != nil {
		return keys.CryptoResult{}, kzcrypto.ErrDecrypt
	}
	return keys.CryptoResult{KeyID: id, KeyVersion: version, Plaintext: pt}, nil
}

// Encrypt implements api.KeyService.
func (f *Keys) Encrypt(ctx context.Context, p keys.EncryptParams) (keys.CryptoResult, error) {
	if err := f.begin("Encrypt", p); err != nil {
		return keys.CryptoResult{}, err
	}
	defer f.mu.Unlock()
	return f.seal(p.Organization, p.KeyID, p.Allow, p.Plaintext, p.Context)
}

// Decrypt implements api.KeyService.
func (f *Keys) Decrypt(ctx context.Context, p keys.DecryptParams) (keys.CryptoResult, error) {
	if err := f.begin("Decrypt", p); err != nil {
		return keys.CryptoResult{}, err
	}
	defer f.mu.Unlock()
	return f.open(p.Organization, p.KeyID, p.Allow, p.Ciphertext, p.Context)
}

// GenerateDataKey implements api.KeyService.
func (f *Keys) GenerateDataKey(ctx context.Context, p keys.DataKeyParams) (keys.CryptoResult, error) {
	if err := f.begin("GenerateDataKey", p); err != nil {
		return keys.CryptoResult{}, err
	}
	defer f.mu.Unlock()
	bits := p.KeySizeBits
	if bits == 0 {
		bits = 256
	}
	if bits != 128 && bits != 256 {
		return keys.CryptoResult{}, invalid("key_size: must be 128 or 256")
	}
	dk := make([]byte, bits/8)
	if _, err := rand.Read(dk); err != nil {
		return keys.CryptoResult{}, err
	}
	res, err := f.seal(p.Organization, p.KeyID, p.Allow, dk, p.Context)
	if err != nil {
		return keys.CryptoResult{}, err
	}
	if !p.WithoutPlaintext {
		res.Plaintext = dk
	}
	return res, nil
}

// ReEncrypt implements api.KeyService.
func (f *Keys) ReEncrypt(ctx context.Context, p keys.ReEncryptParams) (keys.CryptoResult, error) {
	if err := f.begin("ReEncrypt", p); err != nil {
		return keys.CryptoResult{}, err
	}
	defer f.mu.Unlock()
	// A named destination is judged first, as the service does: nothing
	// is opened for a request that can't succeed.
	if p.DestinationKeyID != "" {
		if _, err := f.usable(p.Organization, p.DestinationKeyID, p.Allow); err != nil {
			return keys.CryptoResult{}, err
		}
	}
	src, err := f.open(p.Organization, p.KeyID, p.Allow, p.Ciphertext, p.Context)
	if err != nil {
		return keys.CryptoResult{}, err
	}
	dst := p.DestinationKeyID
	if dst == "" {
		dst = src.KeyID
	}
	return f.seal(p.Organization, dst, p.Allow, src.Plaintext, p.DestinationContext)
}

// Cluster is a ClusterService returning fixed answers. Set the fields
// before serving requests.
type Cluster struct {
	// WaitErr, when set, is returned by WaitApplied.
	WaitErr      error
	StatusResult cluster.Status
	StatusErr    error
	HealthResult cluster.Health
	ZonesResult  []cluster.ZoneStatus
	ZonesErr     error
	DigestResult cluster.DigestReport
	DigestErr    error
	// PeersResult is the zone's voters; RemovePeer and TransferLeadership
	// change it under the fake's lock (read it back with PeersSnapshot).
	PeersResult []cluster.PeerStatus
	// PeersErr, RemoveErr and TransferErr, when set, are returned by
	// Peers, RemovePeer and TransferLeadership.
	PeersErr    error
	RemoveErr   error
	TransferErr error
	// Archive is what SaveSnapshot returns; RestoreSnapshot checks the
	// uploaded archive's layout and checksums (not its MAC, which needs
	// the root key) and records it in Restored.
	Archive  []byte
	Restored []byte
	// RemovedResult, when set, is this node's removal record.
	RemovedResult *fsm.RemovedNode

	mu sync.Mutex
	// transfers records the ids TransferLeadership was asked for.
	transfers []string
}

// NewCluster returns a healthy three-node zone led by node-1, in a
// deployment of three zones: zone-a (this one, change log at 12), zone-b
// (two nodes, 2 entries behind) and zone-c (no live node, never pulled).
// Its digest report, answered by node-1, holds two multi-zone keys: a
// primary of zone-a replicated to zone-b and zone-c, and a replica of a
// zone-b primary.
func NewCluster() *Cluster {
	return &Cluster{
		ZonesResult: []cluster.ZoneStatus{
			{Name: "zone-a", Local: true, ChangeSeq: 12, Nodes: []cluster.ZoneNode{
				{ID: "node-1", APIAddress: "http://127.0.0.1:8201"},
				{ID: "node-2", APIAddress: "http://127.0.0.1:8202"},
				{ID: "node-3", APIAddress: "http://127.0.0.1:8203"},
			}},
			{Name: "zone-b", Applied: 7, Acked: 10, LagEntries: 2, Nodes: []cluster.ZoneNode{
				{ID: "node-b1", APIAddress: "http://127.0.0.1:8211"},
				{ID: "node-b2", APIAddress: "http://127.0.0.1:8212"},
			}},
			{Name: "zone-c", LagEntries: 12, Nodes: []cluster.ZoneNode{}},
		},
		StatusResult: cluster.Status{
			Zone: "zone-a", NodeID: "node-1", Leader: "node-1", Term: 3, AppliedIndex: 42, CommitIndex: 42,
			Nodes: []cluster.NodeStatus{
				{ID: "node-1", APIAddress: "http://127.0.0.1:8201", RaftAddress: "127.0.0.1:8301", State: "leader"},
				{ID: "node-2", APIAddress: "http://127.0.0.1:8202", RaftAddress: "127.0.0.1:8302", State: "follower"},
				{ID: "node-3", APIAddress: "http://127.0.0.1:8203", RaftAddress: "127.0.0.1:8303", State: "follower"},
			},
		},
		HealthResult: cluster.Health{Live: true, Ready: true},
		PeersResult: []cluster.PeerStatus{
			peer("node-1", "leader", 0, 42),
			peer("node-2", "follower", 12*time.Millisecond, 42),
			{ID: "node-3", RaftAddress: "127.0.0.1:8303", APIAddress: "http://127.0.0.1:8203", State: "unreachable"},
		},
		DigestResult: cluster.DigestReport{Zone: "zone-a", Node: "node-1", ChangeSeq: 12, Keys: []fsm.KeyDigest{
			{KeyID: "11111111-1111-4111-8111-111111111111", PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"},
				Digest: strings.Repeat("a1", 32), ReplicaSeq: 12},
			{KeyID: "22222222-2222-4222-8222-222222222222", PrimaryZone: "zone-b", ReplicaZones: []string{"zone-a"},
				Digest: strings.Repeat("b2", 32), ReplicaSeq: 7},
		}},
	}
}

// Status implements api.ClusterService.
func (c *Cluster) Status(ctx context.Context) (cluster.Status, error) {
	return c.StatusResult, c.StatusErr
}

// Health implements api.ClusterService.
func (c *Cluster) Health(ctx context.Context) cluster.Health { return c.HealthResult }

// WaitApplied fails when WaitErr is set and otherwise returns at once.
func (c *Cluster) WaitApplied(ctx context.Context, index uint64) error { return c.WaitErr }

// Zones implements api.ClusterService.
func (c *Cluster) Zones(ctx context.Context) ([]cluster.ZoneStatus, error) {
	return c.ZonesResult, c.ZonesErr
}

// Digests implements api.ClusterService.
func (c *Cluster) Digests(ctx context.Context) (cluster.DigestReport, error) {
	return c.DigestResult, c.DigestErr
}

func peer(id, state string, lastContact time.Duration, applied uint64) cluster.PeerStatus {
	n := id[len(id)-1:]
	return cluster.PeerStatus{ID: id, RaftAddress: "127.0.0.1:830" + n, APIAddress: "http://127.0.0.1:820" + n, State: state,
		LastContact: &lastContact, AppliedIndex: &applied}
}

// Peers implements api.ClusterService.
func (c *Cluster) Peers(ctx context.Context) ([]cluster.PeerStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.PeersResult), c.PeersErr
}

// PeersSnapshot returns the fake's current voters.
func (c *Cluster) PeersSnapshot() []cluster.PeerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.PeersResult)
}

// RemovePeer implements api.ClusterService with the real refusals:
// unknown id, last voter, the leader.
func (c *Cluster) RemovePeer(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.RemoveErr != nil {
		return c.RemoveErr
	}
	i := slices.IndexFunc(c.PeersResult, func(p cluster.PeerStatus) bool { return p.ID == id })
	switch {
	case i < 0:
		return fmt.Errorf("remove peer %s: %w", id, cluster.ErrUnknownPeer)
	case len(c.PeersResult) == 1:
		return fmt.Errorf("remove peer %s: %w", id, cluster.ErrLastVoter)
	case c.PeersResult[i].State == "leader":
		return fmt.Errorf("remove peer %s: %w", id, cluster.ErrRemoveLeader)
	}
	c.PeersResult = slices.Delete(slices.Clone(c.PeersResult), i, i+1)
	return nil
}

// TransferLeadership implements api.ClusterService: it makes id (or, for
// "", the first follower) the leader.
func (c *Cluster) TransferLeadership(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.transfers = append(c.transfers, id)
	if c.TransferErr != nil {
		return c.TransferErr
	}
	target := slices.IndexFunc(c.PeersResult, func(p cluster.PeerStatus) bool {
		return p.ID == id || (id == "" && p.State == "follower")
	})
	if target < 0 {
		return fmt.Errorf("transfer leadership to %s: %w", id, cluster.ErrUnknownPeer)
	}
	ps := slices.Clone(c.PeersResult)
	for i := range ps {
		if ps[i].State == "leader" {
			ps[i].State = "follower"
		}
	}
	ps[target].State = "leader"
	c.PeersResult = ps
	return nil
}

// Transfers returns the ids TransferLeadership was asked for, oldest
// first.
func (c *Cluster) Transfers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.transfers)
}
