package keys

import (
	"errors"
	"time"

	"github.com/keyzone/keyzone/fsm"
)

// ErrInvalidArgument wraps every validation failure of a request; the
// wrapping message names the field and what is wrong with it.
var ErrInvalidArgument = errors.New("invalid argument")

// KeyFilter restricts the keys of its organization a caller may use.
type KeyFilter func(*fsm.Key) bool

// ErrKeyNotAllowed refuses crypto with a key of the caller's organization
// that its token is not allowed to use. HTTP 403.
var ErrKeyNotAllowed = errors.New("this token may not use the key")

// ErrKeyDisabled is returned by crypto on a key that is not enabled; the
// wrapping message names the key's state.
var ErrKeyDisabled = errors.New("key is not enabled")

// CreateParams is a request to create a key. Zero values take defaults:
// usage symmetric_encryption, algorithm aes_256_gcm, origin keyzone.
type CreateParams struct {
	Organization   string
	Name           string
	Description    string
	Tags           []string
	Usage          string
	Algorithm      string
	Origin         string
	Protected      bool
	RotationPeriod time.Duration // 0: no automatic rotation
	ReplicaZones   []string
	IdempotencyKey string
}

// KeyRef names a key for a lifecycle call. IfRevision, when non-zero,
// must match the key's revision (If-Match).
type KeyRef struct {
	Organization string
	KeyID        string
	IfRevision   uint64
}

// UpdateParams changes a key's metadata; nil fields are left alone.
type UpdateParams struct {
	KeyRef
	Name           *string
	Description    *string
	Tags           *[]string
	RotationPeriod *time.Duration // 0 turns automatic rotation off
}

// RotateParams is a manual rotation.
type RotateParams struct {
	KeyRef
	IdempotencyKey string
}

// ScheduleDeletionParams schedules a deletion after PendingWindow
// (0: the server's default window).
type ScheduleDeletionParams struct {
	KeyRef
	PendingWindow time.Duration
}

// ListParams filters and pages a key listing. Keys are listed in id order;
// PageToken is the NextPageToken of the previous page.
type ListParams struct {
	Organization string
	Name         string
	Tag          string
	State        fsm.KeyState
	PageSize     int // 0: 100; at most 1000
	PageToken    string
	Stale        bool
}

// ListResult is one page of keys.
type ListResult struct {
	Keys          []*fsm.Key
	NextPageToken string
}

// Context is the encryption context bound to a ciphertext: either a
// string map or raw associated data, never both.
type Context struct {
	Map            map[string]string
	AssociatedData []byte
}

// EncryptParams encrypts Plaintext under the key's current version.
type EncryptParams struct {
	Organization string
	// Allow, when set, restricts the keys the caller may use (a
	// crypto-user token limited to named or tagged keys).
	Allow     KeyFilter
	KeyID     string
	Plaintext []byte
	Context   Context
}

// DecryptParams decrypts Ciphertext. KeyID is optional: when set, the
// ciphertext must have been made under that key.
type DecryptParams struct {
	Organization string
	// Allow, when set, restricts the keys the caller may use (a
	// crypto-user token limited to named or tagged keys).
	Allow      KeyFilter
	KeyID      string
	Ciphertext []byte
	Context    Context
}

// DataKeyParams generates a data key of KeySizeBits (128 or 256; 0 means
// 256) wrapped under KeyID.
type DataKeyParams struct {
	Organization string
	// Allow, when set, restricts the keys the caller may use (a
	// crypto-user token limited to named or tagged keys).
	Allow            KeyFilter
	KeyID            string
	KeySizeBits      int
	WithoutPlaintext bool
	Context          Context
}

// ReEncryptParams decrypts Ciphertext and encrypts the plaintext again
// under DestinationKeyID's current version (the source key when empty),
// without returning the plaintext.
type ReEncryptParams struct {
	Organization string
	// Allow, when set, restricts the keys the caller may use (a
	// crypto-user token limited to named or tagged keys).
	Allow              KeyFilter
	KeyID              string // optional source key check, as in DecryptParams
	Ciphertext         []byte
	Context            Context
	DestinationKeyID   string
	DestinationContext Context
}

// CryptoResult is the outcome of a crypto call. Plaintext is set for
// decrypt and for data keys unless WithoutPlaintext.
type CryptoResult struct {
	KeyID      string
	KeyVersion uint32
	Ciphertext []byte
	Plaintext  []byte
}
