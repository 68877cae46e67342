package bench

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// Floor routes. They are mounted where api.NewRouter mounts node-to-node
// routes, so they run behind the API's own gin engine and global
// middleware (request metrics, request id, request log, panic recovery,
// error rendering, and whatever is added there later) without any key
// management work.
const (
	// FloorNoopPath answers a small fixed JSON object, having read the body.
	FloorNoopPath = "/v1/internal/floor/noop"
	// FloorEchoPath decodes {"plaintext": base64} and answers
	// {"ciphertext": the same bytes}: JSON and base64 of the payload's
	// size both ways, and nothing else.
	FloorEchoPath = "/v1/internal/floor/echo"
)

// NoKMSKeyID is the key id the no-KMS router's crypto answers name.
const NoKMSKeyID = "00000000000000000000000000000001"

// NewFloorRouter returns api.NewRouter's engine with token as its root
// token, serving the floor routes, and serving the API's own crypto
// routes with a key service that does no work (fixed answers of the
// usual sizes: a 32-byte plaintext, a 32-byte plaintext's ciphertext).
// The latter splits the gap between the floor and Keyzone into what the
// API's handlers cost and what the key service and crypto cost.
func NewFloorRouter(token string, logger hclog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	tokenHash := sha256.Sum256([]byte(token))
	mux := http.NewServeMux()
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		// The API checks the token in a middleware the internal routes
		// skip: the same check is done here so the floor pays for it too.
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], tokenHash[:]) != 1 {
			http.Error(w, `{"error":{"code":"unauthorized","message":"unauthorized"}}`, http.StatusUnauthorized)
			return false
		}
		return true
	}
	writeJSON := func(w http.ResponseWriter, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(b)
	}
	mux.HandleFunc("POST "+FloorNoopPath, func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, struct {
			KeyID      string `json:"key_id"`
			KeyVersion uint32 `json:"key_version"`
		}{NoKMSKeyID, 1})
	})
	mux.HandleFunc("POST "+FloorEchoPath, func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		var in struct {
			Plaintext []byte `json:"plaintext"`
		}
		if err := json.Unmarshal(raw, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, struct {
			KeyID      string `json:"key_id"`
			KeyVersion uint32 `json:"key_version"`
			Ciphertext []byte `json:"ciphertext"`
		}{NoKMSKeyID, 1, in.Plaintext})
	})
	return api.NewRouter(api.Config{
		Keys:    noKMS{},
		Cluster: noCluster{},
		// The operator token is another random string: the floor's calls
		// authenticate as an organization's token, like a KMS caller's.
		OperatorToken: "floor-operator-" + token,
		Tenants:       newFloorTenants(token),
		Internal:      mux,
		Logger:        logger,
		// Counted like a node's requests, so the floor pays for the
		// metrics middleware too.
		Registerer: prometheus.NewRegistry(),
	})
}

// floorTenants knows one organization and one org-admin token, whose
// secret is the floor's token: authentication costs what a node's does
// (a lookup, a SHA-256 and a constant-time comparison).
type floorTenants struct {
	api.TenantService
	token *fsm.Token
	org   *fsm.Organization
}

func newFloorTenants(secret string) floorTenants {
	sum := sha256.Sum256([]byte(secret))
	org := &fsm.Organization{ID: "floor", Name: "floor", RateLimit: -1}
	return floorTenants{
		token: &fsm.Token{ID: "floor", Organization: org.ID, Role: fsm.RoleOrgAdmin, SecretHash: sum[:]},
		org:   org,
	}
}

func (f floorTenants) Authenticate(_ context.Context, secret string) (*fsm.Token, *fsm.Organization, error) {
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], f.token.SecretHash) != 1 {
		return nil, nil, keys.ErrUnauthenticated
	}
	return f.token, f.org, nil
}

// noKMS answers the crypto calls without doing any work. Its other
// methods are those of a nil api.KeyService: the floor never calls them.
type noKMS struct{ api.KeyService }

var (
	fixedPlaintext  = make([]byte, 32)
	fixedCiphertext = make([]byte, 32+65) // header 49 + sealed 32 + tag 16
)

func (noKMS) Encrypt(_ context.Context, p keys.EncryptParams) (keys.CryptoResult, error) {
	return keys.CryptoResult{KeyID: p.KeyID, KeyVersion: 1, Ciphertext: fixedCiphertext}, nil
}

func (noKMS) Decrypt(_ context.Context, p keys.DecryptParams) (keys.CryptoResult, error) {
	return keys.CryptoResult{KeyID: NoKMSKeyID, KeyVersion: 1, Plaintext: fixedPlaintext}, nil
}

func (noKMS) GenerateDataKey(_ context.Context, p keys.DataKeyParams) (keys.CryptoResult, error) {
	return keys.CryptoResult{KeyID: p.KeyID, KeyVersion: 1, Plaintext: fixedPlaintext, Ciphertext: fixedCiphertext}, nil
}

func (noKMS) ReEncrypt(_ context.Context, p keys.ReEncryptParams) (keys.CryptoResult, error) {
	return keys.CryptoResult{KeyID: NoKMSKeyID, KeyVersion: 1, Ciphertext: fixedCiphertext}, nil
}

// noCluster stands for the node: only health is ever asked of it here.
type noCluster struct{ api.ClusterService }

var errNoCluster = errors.New("bench: the floor server is no cluster node")

func (noCluster) WaitApplied(context.Context, uint64) error { return errNoCluster }

// Removed says the floor is never removed from a zone: the API asks on
// every key route.
func (noCluster) Removed() (fsm.RemovedNode, bool) { return fsm.RemovedNode{}, false }
