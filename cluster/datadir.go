package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// identityFile records who wrote a data dir. It holds no secret: the
// root key's fingerprint is an HMAC of a fixed label under the key.
const identityFile = "node.json"

type identity struct {
	NodeID string `json:"node_id"`
	Zone   string `json:"zone"`
	RekID  string `json:"rek_id"`
}

// ErrRootKeyMismatch means the data dir was written under another root
// key; serving from it would only produce unwrap failures.
var ErrRootKeyMismatch = errors.New("cluster: data dir was written with a different root key")

// ErrIdentityMismatch means the data dir belongs to another node id or
// zone. A replaced node must come back with a wiped data dir.
var ErrIdentityMismatch = errors.New("cluster: data dir belongs to another node")

// checkDataDir creates the data dir on first start and refuses one that
// was written by another node or under another root key.
func checkDataDir(cfg *Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, identityFile)
	want := identity{NodeID: cfg.NodeID, Zone: cfg.Zone, RekID: cfg.RekID}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return writeIdentity(path, want)
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	}
	var got identity
	if err := json.Unmarshal(b, &got); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	if got.RekID != want.RekID {
		return fmt.Errorf("%w: %s was written with root key %s, this node was given root key %s",
			ErrRootKeyMismatch, cfg.DataDir, got.RekID, want.RekID)
	}
	if got.NodeID != want.NodeID || got.Zone != want.Zone {
		return fmt.Errorf("%w: %s belongs to node %s of zone %s, not node %s of zone %s",
			ErrIdentityMismatch, cfg.DataDir, got.NodeID, got.Zone, want.NodeID, want.Zone)
	}
	return nil
}

func writeIdentity(path string, id identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	return os.Rename(tmp, path)
}
