package apitest

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// ImportParameters implements api.KeyService: parameters with a random
// public key and a fixed token, for keys of origin external.
func (f *Keys) ImportParameters(ctx context.Context, r keys.KeyRef) (keys.ImportParameters, error) {
	if err := f.begin("ImportParameters", r); err != nil {
		return keys.ImportParameters{}, err
	}
	defer f.mu.Unlock()
	k, err := f.lookup(r.Organization, r.KeyID)
	if err != nil {
		return keys.ImportParameters{}, err
	}
	if k.Origin != fsm.OriginExternal {
		return keys.ImportParameters{}, fsm.ErrNotExternal
	}
	pub := make([]byte, 32)
	rand.Read(pub)
	return keys.ImportParameters{
		KeyID: k.ID, TokenID: "token-id", ImportToken: "kzimp_fake", PublicKey: pub,
		Info: keys.ImportInfo(k.ID, "token-id"), Algorithm: keys.ImportAlgorithm,
		ExpiresAt: time.Unix(0, f.now()).Add(keys.DefaultImportTokenTTL),
	}, nil
}

// ImportKeyMaterial implements api.KeyService: it adds a version to a
// key of origin external without looking at the material, and refuses
// raw material unless the request came over TLS.
func (f *Keys) ImportKeyMaterial(ctx context.Context, p keys.ImportMaterialParams) (*fsm.Key, error) {
	if err := f.begin("ImportKeyMaterial", p); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	if len(p.Raw) > 0 && !p.OverTLS {
		return nil, keys.ErrRawImportRefused
	}
	return f.change(p.KeyRef, func(k *fsm.Key, now int64) error {
		if k.Origin != fsm.OriginExternal {
			return fsm.ErrNotExternal
		}
		n := uint32(len(k.Versions)) + 1
		k.Versions = append(k.Versions, fsm.Version{Number: n, CreatedAt: now, State: fsm.VersionStateEnabled})
		k.CurrentVersion = n
		k.State = fsm.KeyStateEnabled
		return nil
	})
}
