package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Sentinel errors returned in Result.Err. They are the same on every node
// for the same log, and survive forwarding between nodes through their
// codes (see ErrorCode and ErrorFromCode).
var (
	// ErrKeyNotFound: no live key with that id in the caller's
	// organization (another organization's key, a purged key). HTTP 404.
	ErrKeyNotFound = errors.New("fsm: key not found")
	// ErrKeyExists: the id is taken by a live or purged key. HTTP 409.
	ErrKeyExists = errors.New("fsm: key already exists")
	// ErrRevisionMismatch: KeyRefV1.IfRevision differs from the key's
	// Revision. HTTP 412.
	ErrRevisionMismatch = errors.New("fsm: key revision does not match If-Match")
	// ErrVersionConflict: a rotation's version number is not the next
	// one; the proposer may retry with fresh state. HTTP 409.
	ErrVersionConflict = errors.New("fsm: key version conflict")
	// ErrKeyProtected: deletion of a protected key. HTTP 409.
	ErrKeyProtected = errors.New("fsm: key is protected")
	// ErrInvalidCommand: a payload breaking a rule the proposer should
	// have checked (empty field, past time, scheduled rotation not due).
	// HTTP 400.
	ErrInvalidCommand = errors.New("fsm: invalid command")
	// ErrRotationPending: a rotation of a multi-zone key whose previous
	// new version has not reached every replica zone yet. HTTP 409.
	ErrRotationPending = errors.New("fsm: previous rotation is still replicating")
	// ErrChangeGap: a batch of another zone's change log that does not
	// start where this zone left off; the puller pulls again.
	ErrChangeGap = errors.New("fsm: change log batch does not follow the last applied sequence")
	// ErrZoneBehind: update-primary to a zone that has not applied the
	// key's last change; force it to accept losing that change. HTTP 409.
	ErrZoneBehind = errors.New("fsm: the zone has not applied the key's last change")
)

// TransitionError is a lifecycle operation refused in the key's current
// state (rotate a disabled key, enable a key pending deletion, ...).
type TransitionError struct {
	KeyID string   `json:"key_id"`
	From  KeyState `json:"from"`
	Op    string   `json:"op"`
}

// Error implements error.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("fsm: cannot %s key %s in state %s", e.Op, e.KeyID, e.From)
}

// Stable error codes, shared by the forwarding protocol and the HTTP API.
const (
	CodeKeyNotFound      = "key_not_found"
	CodeKeyExists        = "key_exists"
	CodeRevisionMismatch = "revision_mismatch"
	CodeVersionConflict  = "version_conflict"
	CodeKeyProtected     = "key_protected"
	CodeInvalidCommand   = "invalid_command"
	CodeInvalidState     = "invalid_state"
	CodeRotationPending  = "rotation_pending"
	CodeChangeGap        = "change_gap"
	CodeNotPrimary       = "not_primary"
	CodeZoneBehind       = "zone_behind"
)

var sentinelCodes = []struct {
	err  error
	code string
}{
	{ErrKeyNotFound, CodeKeyNotFound},
	{ErrKeyExists, CodeKeyExists},
	{ErrRevisionMismatch, CodeRevisionMismatch},
	{ErrVersionConflict, CodeVersionConflict},
	{ErrKeyProtected, CodeKeyProtected},
	{ErrInvalidCommand, CodeInvalidCommand},
	{ErrRotationPending, CodeRotationPending},
	{ErrChangeGap, CodeChangeGap},
	{ErrZoneBehind, CodeZoneBehind},
	{ErrNotExternal, CodeNotExternal},
	{ErrImportTokenInvalid, CodeImportTokenInvalid},
	{ErrImportTokenExpired, CodeImportTokenExpired},
	{ErrImportTokenUsed, CodeImportTokenUsed},
	{ErrOrganizationNotFound, CodeOrganizationNotFound},
	{ErrOrganizationExists, CodeOrganizationExists},
	{ErrTokenNotFound, CodeTokenNotFound},
	{ErrQuotaExceeded, CodeQuotaExceeded},
	{ErrDefaultKey, CodeDefaultKey},
}

// NotPrimaryError refuses a lifecycle change of a replica key: changes
// are made in the key's primary zone and reach replicas through the
// change log.
type NotPrimaryError struct {
	KeyID       string `json:"key_id"`
	PrimaryZone string `json:"primary_zone"`
}

func (e *NotPrimaryError) Error() string {
	return fmt.Sprintf("fsm: key %s is a replica; its primary zone is %s", e.KeyID, e.PrimaryZone)
}

// resultWire is the JSON form of a Result, used when a follower forwards
// a proposal to the leader and gets the leader's Result back.
type resultWire struct {
	Key          *Key             `json:"key,omitempty"`
	Organization *Organization    `json:"organization,omitempty"`
	Token        *Token           `json:"token,omitempty"`
	ErrCode      string           `json:"err_code,omitempty"`
	ErrMessage   string           `json:"err_message,omitempty"`
	Transition   *TransitionError `json:"transition,omitempty"`
	NotPrimary   *NotPrimaryError `json:"not_primary,omitempty"`
}

// MarshalJSON encodes the result with its error as a stable code.
func (r Result) MarshalJSON() ([]byte, error) {
	w := resultWire{Key: r.Key, Organization: r.Organization, Token: r.Token}
	if r.Err != nil {
		w.ErrMessage = r.Err.Error()
		var te *TransitionError
		var np *NotPrimaryError
		switch {
		case errors.As(r.Err, &te):
			w.ErrCode, w.Transition = CodeInvalidState, te
		case errors.As(r.Err, &np):
			w.ErrCode, w.NotPrimary = CodeNotPrimary, np
		default:
			w.ErrCode = CodeInvalidCommand
			for _, s := range sentinelCodes {
				if errors.Is(r.Err, s.err) {
					w.ErrCode = s.code
					break
				}
			}
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON restores a result encoded by MarshalJSON, with its error
// matching the same sentinel or TransitionError as on the leader.
func (r *Result) UnmarshalJSON(b []byte) error {
	var w resultWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Result{Key: w.Key, Organization: w.Organization, Token: w.Token}
	if w.ErrCode == "" {
		return nil
	}
	if w.ErrCode == CodeInvalidState && w.Transition != nil {
		r.Err = w.Transition
		return nil
	}
	if w.ErrCode == CodeNotPrimary && w.NotPrimary != nil {
		r.Err = w.NotPrimary
		return nil
	}
	for _, s := range sentinelCodes {
		if s.code == w.ErrCode {
			if w.ErrMessage == s.err.Error() {
				r.Err = s.err
			} else {
				r.Err = fmt.Errorf("%s: %w", trimPrefix(w.ErrMessage, s.err.Error()), s.err)
			}
			return nil
		}
	}
	r.Err = fmt.Errorf("%s: %w", w.ErrMessage, ErrInvalidCommand)
	return nil
}

func trimPrefix(msg, suffix string) string {
	if len(msg) > len(suffix)+2 && msg[len(msg)-len(suffix)-2:] == ": "+suffix {
		return msg[:len(msg)-len(suffix)-2]
	}
	return msg
}

// Result is what Apply returns for every command: the key after the
// change (nil for commands without one) or the reason it was refused.
type Result struct {
	Key *Key
	// Organization and Token are the records a tenancy command created
	// or changed.
	Organization *Organization
	Token        *Token
	Err          error
}
