package fsm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// OpImport is the operation named by a TransitionError refusing an
// import (or import parameters) in the key's state.
const OpImport = "import"

// Import refusals. They travel through forwarding with their codes (see
// sentinelCodes) so every node of the zone answers alike.
var (
	// ErrNotExternal: import into a key whose material Keyzone generated
	// (origin keyzone). HTTP 409.
	ErrNotExternal = errors.New("fsm: the key does not take imported material (its origin is not external)")
	// ErrImportTokenInvalid: the import token is not the key's current
	// one (never issued, replaced by newer import parameters, or
	// belonging to another key). HTTP 400.
	ErrImportTokenInvalid = errors.New("fsm: the import token is not this key's current one: get new import parameters")
	// ErrImportTokenExpired: the import parameters expired. HTTP 400.
	ErrImportTokenExpired = errors.New("fsm: the import token has expired: get new import parameters")
	// ErrImportTokenUsed: the import parameters already imported a
	// version; each import needs fresh ones. HTTP 409.
	ErrImportTokenUsed = errors.New("fsm: the import token was already used: get new import parameters")
)

// Codes of the import refusals.
const (
	CodeNotExternal        = "origin_not_external"
	CodeImportTokenInvalid = "import_token_invalid"
	CodeImportTokenExpired = "import_token_expired"
	CodeImportTokenUsed    = "import_token_used"
)

// ImportParams are the current import parameters of a key of origin
// external: an X25519 key pair the caller seals material to, and the
// import token that must come with the sealed material. The proposer
// draws both; the state keeps only the token's SHA-256 (the token is
// shown once) and the private key wrapped under the REK. A key has at
// most one set: new parameters replace the previous ones, an import
// consumes them (UsedAt set, private key erased), so a token imports at
// most one version.
type ImportParams struct {
	KeyID     string `json:"key_id"`
	TokenID   string `json:"token_id"`
	TokenHash []byte `json:"token_hash"` // SHA-256 of the import token
	PublicKey []byte `json:"public_key"` // X25519, 32 bytes
	// WrappedPrivateKey is the X25519 private key wrapped under the REK
	// RekID; nil once the parameters are used.
	WrappedPrivateKey []byte `json:"wrapped_private_key,omitempty"`
	RekID             string `json:"rek_id"`
	CreatedAt         int64  `json:"created_at"` // unix ns
	ExpiresAt         int64  `json:"expires_at"` // unix ns
	UsedAt            int64  `json:"used_at,omitempty"`
}

// SetImportParamsV1 is the payload of CmdSetImportParams: Params become
// the key's current import parameters. Proposed by keys when a caller
// asks for import parameters. Since v4 (BYOK).
type SetImportParamsV1 struct {
	KeyRefV1
	Params ImportParams `json:"params"`
}

// ImportKeyMaterialV1 is the payload of CmdImportKeyMaterial: NewVersion
// carries material the proposer derived from the imported material
// (HKDF-SHA256 with a random salt) and wrapped under the REK. TokenID
// names the import parameters it consumes; it is empty only for a raw
// import the proposer was configured to accept. Since v4 (BYOK).
type ImportKeyMaterialV1 struct {
	KeyRefV1
	TokenID    string  `json:"token_id,omitempty"`
	NewVersion Version `json:"new_version"`
}

// importableState reports whether a key in state st takes import
// parameters and imports: waiting for its first version, or enabled
// (like a rotation, which needs an enabled key).
func importableState(st KeyState) bool {
	return st == KeyStatePendingImport || st == KeyStateEnabled
}

// importTarget finds the key of an import command and checks that it
// takes imports now.
func (s *state) importTarget(ref KeyRefV1) (*Key, error) {
	k, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	if k.Origin != OriginExternal {
		return nil, fmt.Errorf("key %s: %w", k.ID, ErrNotExternal)
	}
	if !importableState(k.State) {
		return nil, transition(k, OpImport)
	}
	return k, nil
}

func validateImportParams(p *ImportParams, now int64) error {
	switch {
	case p.TokenID == "" || strings.Contains(p.TokenID, "/"):
		return invalid("import token id %q", p.TokenID)
	case len(p.TokenHash) != sha256.Size:
		return invalid("import token hash of %d bytes", len(p.TokenHash))
	case len(p.PublicKey) != 32:
		return invalid("import public key of %d bytes", len(p.PublicKey))
	case len(p.WrappedPrivateKey) == 0 || p.RekID == "":
		return invalid("import parameters without a wrapped private key")
	case p.ExpiresAt <= now:
		return invalid("import parameters expire at %d, not after now %d", p.ExpiresAt, now)
	case p.UsedAt != 0:
		return invalid("new import parameters marked used")
	}
	return nil
}

// applySetImportParams stores the key's new import parameters. The key
// itself does not change (its revision stays): the parameters are not
// part of the key and are not replicated to other zones.
func applySetImportParams(s *state, _ uint64, p *SetImportParamsV1) Result {
	k, err := s.importTarget(p.KeyRefV1)
	if err != nil {
		return Result{Err: err}
	}
	ip := p.Params
	if err := validateImportParams(&ip, p.Now); err != nil {
		return Result{Err: fmt.Errorf("import parameters of key %s: %w", k.ID, err)}
	}
	ip.KeyID = k.ID
	ip.CreatedAt = p.Now
	ip.RekID = intern(ip.RekID)
	if s.imports == nil {
		s.imports = make(map[string]ImportParams)
	}
	s.imports[k.ID] = ip
	return Result{Key: k}
}

// applyImportKeyMaterial adds an imported version. The first one enables
// a pending_import key; later ones are rotations (two-phase on a
// multi-zone primary, like applyRotateKey). The token is checked here
// again, authoritatively: two imports racing with one token both pass
// the proposer's check, and only the first one applied succeeds.
func applyImportKeyMaterial(s *state, index uint64, p *ImportKeyMaterialV1) Result {
	k, err := s.importTarget(p.KeyRefV1)
	if err != nil {
		return Result{Err: err}
	}
	if k.PendingVersion != 0 {
		return Result{Err: fmt.Errorf("import into key %s: version %d still waits for zones %v: %w",
			k.ID, k.PendingVersion, k.PendingZones, ErrRotationPending)}
	}
	var ip ImportParams
	if p.TokenID != "" {
		var ok bool
		ip, ok = s.imports[k.ID]
		switch {
		case !ok || ip.TokenID != p.TokenID:
			return Result{Err: fmt.Errorf("import into key %s: %w", k.ID, ErrImportTokenInvalid)}
		case ip.UsedAt != 0:
			return Result{Err: fmt.Errorf("import into key %s: %w", k.ID, ErrImportTokenUsed)}
		case ip.ExpiresAt <= p.Now:
			return Result{Err: fmt.Errorf("import into key %s: %w", k.ID, ErrImportTokenExpired)}
		}
	}
	v := p.NewVersion
	if want := uint32(len(k.Versions)) + 1; v.Number != want {
		return Result{Err: fmt.Errorf("import into key %s: new version %d, want %d: %w",
			k.ID, v.Number, want, ErrVersionConflict)}
	}
	if err := validateNewVersion(v); err != nil {
		return Result{Err: fmt.Errorf("import into key %s: %w", k.ID, err)}
	}

	c := k.clone()
	v.State = VersionStateEnabled
	v.RekID = intern(v.RekID)
	c.Versions = append(slices.Clip(c.Versions), v)
	switch {
	case c.State == KeyStatePendingImport:
		// No ciphertext exists yet, so there is nothing a replica could
		// fail to decrypt: the first version encrypts at once, as a
		// created key's first version does.
		c.State = KeyStateEnabled
		c.CurrentVersion = v.Number
	case s.multiZonePrimary(c):
		s.startPending(c)
	default:
		c.CurrentVersion = v.Number
	}
	if p.TokenID != "" {
		ip.UsedAt = p.Now
		ip.WrappedPrivateKey = nil
		s.imports[k.ID] = ip
	}
	return s.commit(c, index, p.Now)
}

// ImportParams returns the current import parameters of key id (used or
// not, expired or not: the caller compares with its clock).
func (f *FSM) ImportParams(id string) (ImportParams, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.st.imports[id]
	return p, ok
}

// importRecords returns a copy of the import parameters for a snapshot.
func (s *state) importRecords() map[string]ImportParams { return maps.Clone(s.imports) }

// restoreImport adds one snapshot record of import parameters.
func (s *state) restoreImport(p *ImportParams) error {
	if p == nil || p.KeyID == "" || p.TokenID == "" {
		return fmt.Errorf("import record without key id or token id: %w", errSnapshot)
	}
	if _, dup := s.imports[p.KeyID]; dup {
		return fmt.Errorf("duplicate import parameters of key %q: %w", p.KeyID, errSnapshot)
	}
	if s.imports == nil {
		s.imports = make(map[string]ImportParams)
	}
	p.RekID = intern(p.RekID)
	s.imports[p.KeyID] = *p
	return nil
}

// writeImports writes the import parameters sorted by key id.
func writeImports(w *snapshotWriter, m map[string]ImportParams) error {
	for _, id := range slices.Sorted(maps.Keys(m)) {
		if err := w.jsonFrame(frameImport, m[id]); err != nil {
			return err
		}
	}
	return nil
}
