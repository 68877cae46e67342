package keys

import (
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// Bring your own key (BYOK). A key of origin external gets its versions
// from material the caller generated. The caller asks for import
// parameters (an X25519 public key and a single-use import token), seals
// the material to the public key with HPKE (RFC 9180: DHKEM(X25519,
// HKDF-SHA256), HKDF-SHA256, AES-256-GCM) and sends it with the token.
// The material itself never becomes a version key: each import derives
// the version material as HKDF-SHA256(material, fresh 32-byte salt), so
// two imports of the same material give unrelated version keys.

// Bounds of imported material, in bytes.
const (
	MinImportedMaterial = 16
	MaxImportedMaterial = 64
)

// DefaultImportTokenTTL is how long import parameters stay usable when
// Config.ImportTokenTTL is 0.
const DefaultImportTokenTTL = 24 * time.Hour

// importTokenPrefix starts every import token, so that one pasted in the
// wrong place is recognisable (and scanners can find leaked ones).
const importTokenPrefix = "kzimp_"

// HPKE labels. The info binds the key id and the import parameters' token
// id, so material sealed for one key (or one set of parameters) opens
// under no other.
const (
	labelImportInfo    = "keyzone/v1/import"
	labelImportVersion = "keyzone/v1/imported-version"
)

// ImportAlgorithm names the HPKE suite of import parameters.
const ImportAlgorithm = "HPKE-DHKEM-X25519-HKDF-SHA256-AES-256-GCM"

var (
	// ErrImportUnseal: the sealed material does not open under the key's
	// current import parameters. The message says nothing more on purpose.
	ErrImportUnseal = errors.New("the material was not sealed to this key's current import parameters")
	// ErrRawImportRefused: raw (unsealed) material was sent to a server
	// that does not accept it, or over a connection without TLS.
	ErrRawImportRefused = errors.New("raw key material import is refused: this server accepts it only over TLS and only when configured with --allow-raw-import; seal the material to the key's import parameters instead")
)

// ImportParameters are what a caller needs to seal material for a key.
// ImportToken is shown once: the state keeps only its SHA-256.
type ImportParameters struct {
	KeyID       string
	TokenID     string
	ImportToken string
	PublicKey   []byte // X25519, 32 bytes
	Info        []byte // HPKE info to seal with
	Algorithm   string
	ExpiresAt   time.Time
}

// ImportMaterialParams is one import. Exactly one of Sealed (with
// ImportToken) and Raw is set. OverTLS tells whether the request arrived
// over TLS; a raw import needs it and Config.AllowRawImport.
type ImportMaterialParams struct {
	KeyRef
	ImportToken string
	Sealed      []byte
	Raw         []byte
	OverTLS     bool
}

// ImportInfo returns the HPKE info of the import parameters tokenID of
// key keyID.
func ImportInfo(keyID, tokenID string) []byte {
	return []byte(labelImportInfo + "\x00" + keyID + "\x00" + tokenID)
}

func importSuite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

// importTTL is the configured lifetime of import parameters.
func (s *Service) importTTL() time.Duration {
	if s.cfg.ImportTokenTTL > 0 {
		return s.cfg.ImportTokenTTL
	}
	return DefaultImportTokenTTL
}

// importTarget reads key r after a consistent read and checks it takes
// imports, before any crypto is done: a replica answers NotPrimaryError
// (the API forwards to the primary zone).
func (s *Service) importTarget(ctx context.Context, r KeyRef) (*fsm.Key, kzcrypto.KeyID, error) {
	kid, err := parseKeyID(r.KeyID)
	if err != nil {
		return nil, kid, err
	}
	if err := s.proposer.ConsistentRead(ctx); err != nil {
		return nil, kid, err
	}
	k, ok := s.fsm.Key(r.KeyID)
	switch {
	case !ok || k.Organization != r.Organization:
		return nil, kid, fmt.Errorf("key %s: %w", r.KeyID, fsm.ErrKeyNotFound)
	case k.IsReplicaIn(s.cfg.Zone):
		return nil, kid, &fsm.NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}
	case k.Origin != fsm.OriginExternal:
		return nil, kid, fmt.Errorf("key %s: %w", k.ID, fsm.ErrNotExternal)
	case k.State != fsm.KeyStatePendingImport && k.State != fsm.KeyStateEnabled:
		return nil, kid, &fsm.TransitionError{KeyID: k.ID, From: k.State, Op: fsm.OpImport}
	}
	return k, kid, nil
}

// ImportParameters draws a fresh X25519 key pair and import token for a
// key of origin external and makes them its current import parameters
// (replacing earlier ones). Any node of the zone can later open material
// sealed to them: the private key is in the replicated state, wrapped
// under the REK.
func (s *Service) ImportParameters(ctx context.Context, r KeyRef) (ImportParameters, error) {
	_, kid, err := s.importTarget(ctx, r)
	if err != nil {
		return ImportParameters{}, fmt.Errorf("import parameters: %w", err)
	}
	now := s.cfg.Now()
	seed := make([]byte, 32)
	defer clear(seed)
	if _, err := io.ReadFull(s.cfg.Rand, seed); err != nil {
		return ImportParameters{}, fmt.Errorf("import key pair: %w", err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(seed)
	if err != nil {
		return ImportParameters{}, fmt.Errorf("import key pair: %w", err)
	}
	wrapped, err := s.rek.WrapImportKey(s.cfg.Rand, kid, seed)
	if err != nil {
		return ImportParameters{}, fmt.Errorf("wrap import key: %w", err)
	}
	rnd := make([]byte, 16+32)
	if _, err := io.ReadFull(s.cfg.Rand, rnd); err != nil {
		return ImportParameters{}, fmt.Errorf("import token: %w", err)
	}
	tokenID := hex.EncodeToString(rnd[:16])
	token := importTokenPrefix + tokenID + "_" + base64.RawURLEncoding.EncodeToString(rnd[16:])
	clear(rnd)
	hash := sha256.Sum256([]byte(token))
	expires := now.Add(s.importTTL())
	payload := fsm.SetImportParamsV1{
		KeyRefV1: s.ref(r, now.UnixNano()),
		Params: fsm.ImportParams{
			TokenID:           tokenID,
			TokenHash:         hash[:],
			PublicKey:         priv.PublicKey().Bytes(),
			WrappedPrivateKey: wrapped,
			RekID:             s.rek.ID(),
			ExpiresAt:         expires.UnixNano(),
		},
	}
	if _, err := s.propose(ctx, fsm.CmdSetImportParams, payload); err != nil {
		return ImportParameters{}, fmt.Errorf("import parameters: %w", err)
	}
	return ImportParameters{
		KeyID:       r.KeyID,
		TokenID:     tokenID,
		ImportToken: token,
		PublicKey:   payload.Params.PublicKey,
		Info:        ImportInfo(r.KeyID, tokenID),
		Algorithm:   ImportAlgorithm,
		ExpiresAt:   expires,
	}, nil
}

// parseImportToken returns the token id of a well-formed import token.
func parseImportToken(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, importTokenPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 32 || len(secret) != 43 {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", false
	}
	return id, true
}

// ImportKeyMaterial adds a version to a key of origin external from
// material the caller generated: sealed to the key's current import
// parameters (which it consumes), or raw when the server accepts raw
// imports and the request came over TLS. The first import enables a key
// pending import; each later one is a rotation.
func (s *Service) ImportKeyMaterial(ctx context.Context, p ImportMaterialParams) (*fsm.Key, error) {
	if (len(p.Sealed) == 0) == (len(p.Raw) == 0) {
		return nil, invalid("give either encrypted_material (with import_token) or key_material")
	}
	if len(p.Raw) > 0 && (!s.cfg.AllowRawImport || !p.OverTLS) {
		return nil, ErrRawImportRefused
	}
	if len(p.Sealed) > 0 && p.ImportToken == "" {
		return nil, invalid("import_token is required with encrypted_material")
	}
	_, kid, err := s.importTarget(ctx, p.KeyRef)
	if err != nil {
		return nil, fmt.Errorf("import key material: %w", err)
	}
	material, tokenID, err := s.openMaterial(kid, p)
	if err != nil {
		return nil, fmt.Errorf("import key material into key %s: %w", p.KeyID, err)
	}
	defer clear(material)
	if n := len(material); n < MinImportedMaterial || n > MaxImportedMaterial {
		return nil, invalid("imported key material is %d bytes; it must be %d to %d bytes", n, MinImportedMaterial, MaxImportedMaterial)
	}
	for attempt := 0; ; attempt++ {
		k, err := s.importOnce(ctx, kid, p.KeyRef, tokenID, material)
		if errors.Is(err, fsm.ErrVersionConflict) && attempt+1 < maxRotateAttempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("import key material: %w", err)
		}
		s.logger.Info("imported key material", "key_id", k.ID, "key_version", len(k.Versions))
		return k, nil
	}
}

// openMaterial checks the import token against the key's current import
// parameters and opens the sealed material; a raw import passes through.
// The checks are repeated by Apply, which alone decides races.
func (s *Service) openMaterial(kid kzcrypto.KeyID, p ImportMaterialParams) ([]byte, string, error) {
	if len(p.Raw) > 0 {
		return append([]byte(nil), p.Raw...), "", nil
	}
	tokenID, ok := parseImportToken(p.ImportToken)
	if !ok {
		return nil, "", fsm.ErrImportTokenInvalid
	}
	params, ok := s.fsm.ImportParams(p.KeyID)
	hash := sha256.Sum256([]byte(p.ImportToken))
	switch {
	case !ok || params.TokenID != tokenID || subtle.ConstantTimeCompare(hash[:], params.TokenHash) != 1:
		return nil, "", fsm.ErrImportTokenInvalid
	case params.UsedAt != 0:
		return nil, "", fsm.ErrImportTokenUsed
	case params.ExpiresAt <= s.now():
		return nil, "", fsm.ErrImportTokenExpired
	case params.RekID != s.rek.ID():
		return nil, "", fmt.Errorf("import parameters wrapped under root key %s, this node holds %s", params.RekID, s.rek.ID())
	}
	seed, err := s.rek.UnwrapImportKey(kid, params.WrappedPrivateKey)
	if err != nil {
		return nil, "", fmt.Errorf("unwrap import key: %w", err)
	}
	defer clear(seed)
	ex, err := ecdh.X25519().NewPrivateKey(seed)
	if err != nil {
		return nil, "", fmt.Errorf("import key: %w", err)
	}
	priv, err := hpke.NewDHKEMPrivateKey(ex)
	if err != nil {
		return nil, "", fmt.Errorf("import key: %w", err)
	}
	kdf, aead := importSuite()
	material, err := hpke.Open(priv, kdf, aead, ImportInfo(p.KeyID, tokenID), p.Sealed)
	if err != nil {
		return nil, "", ErrImportUnseal
	}
	return material, tokenID, nil
}

// importOnce derives the next version from the material and proposes it.
func (s *Service) importOnce(ctx context.Context, kid kzcrypto.KeyID, r KeyRef, tokenID string, material []byte) (*fsm.Key, error) {
	if err := s.proposer.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	cur, ok := s.fsm.Key(r.KeyID)
	if !ok || cur.Organization != r.Organization {
		return nil, fmt.Errorf("key %s: %w", r.KeyID, fsm.ErrKeyNotFound)
	}
	now := s.now()
	n := uint32(len(cur.Versions)) + 1
	v, err := s.importedVersion(kid, n, material, now)
	if err != nil {
		return nil, err
	}
	payload := fsm.ImportKeyMaterialV1{KeyRefV1: s.ref(r, now), TokenID: tokenID, NewVersion: v}
	k, err := s.propose(ctx, fsm.CmdImportKeyMaterial, payload)
	if outcomeUnknown(err) {
		if k, ok := s.resolveUnknown(ctx, r.KeyID, func(k *fsm.Key) bool {
			got, ok := k.Version(n)
			return ok && string(got.Wrapped) == string(v.Wrapped)
		}); ok {
			return k, nil
		}
	}
	return k, err
}

// importedVersion derives version n's material from imported material
// with a fresh random salt, and wraps it under the REK. Neither the
// material nor the salt is kept: the wrapped result is the version.
func (s *Service) importedVersion(kid kzcrypto.KeyID, n uint32, material []byte, now int64) (fsm.Version, error) {
	salt := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, salt); err != nil {
		return fsm.Version{}, fmt.Errorf("import salt: %w", err)
	}
	info := make([]byte, 0, len(labelImportVersion)+kzcrypto.KeyIDSize+4)
	info = append(info, labelImportVersion...)
	info = append(info, kid[:]...)
	info = binary.BigEndian.AppendUint32(info, n)
	vm, err := hkdf.Key(sha256.New, material, salt, string(info), kzcrypto.MaterialSize)
	if err != nil {
		return fsm.Version{}, fmt.Errorf("derive imported version: %w", err)
	}
	defer clear(vm)
	wrapped, err := s.rek.Wrap(s.cfg.Rand, kid, n, vm)
	if err != nil {
		return fsm.Version{}, fmt.Errorf("wrap imported version: %w", err)
	}
	return fsm.Version{Number: n, Wrapped: wrapped, RekID: s.rek.ID(), CreatedAt: now, State: fsm.VersionStateEnabled}, nil
}
