package keys

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// Limits on metadata, so that one caller can't bloat every node's state.
const (
	maxNameLen        = 256
	maxDescriptionLen = 8192
	maxTags           = 50
	maxTagLen         = 128
	maxPageSize       = 1000
	defaultPageSize   = 100
	maxRotationPeriod = 100 * 365 * 24 * time.Hour
)

func validateName(name string) error {
	if name == "" {
		return invalid("name is required")
	}
	if err := validateText("name", name, maxNameLen); err != nil {
		return err
	}
	if strings.TrimSpace(name) != name {
		return invalid("name must not start or end with spaces")
	}
	return nil
}

func validateText(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return invalid("%s must be valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return invalid("%s is %d characters, at most %d allowed", field, n, max)
	}
	for _, r := range v {
		if unicode.IsControl(r) && !(field == "description" && (r == '\n' || r == '\t')) {
			return invalid("%s must not contain control characters", field)
		}
	}
	return nil
}

// normalizeTags checks tags and returns them without duplicates, in the
// caller's order.
func normalizeTags(tags []string) ([]string, error) {
	if len(tags) > 4*maxTags {
		return nil, invalid("%d tags given, at most %d distinct allowed", len(tags), maxTags)
	}
	out := make([]string, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		if t == "" {
			return nil, invalid("tags must not be empty")
		}
		if err := validateText("tag", t, maxTagLen); err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > maxTags {
		return nil, invalid("%d distinct tags given, at most %d allowed", len(out), maxTags)
	}
	return out, nil
}

func (s *Service) validateRotationPeriod(p time.Duration) error {
	if p == 0 {
		return nil
	}
	if p < s.cfg.MinRotationPeriod || p > maxRotationPeriod {
		return invalid("rotation period %s is outside the allowed range %s..%s", p, s.cfg.MinRotationPeriod, maxRotationPeriod)
	}
	return nil
}

func rotationPolicy(period time.Duration, now int64) fsm.RotationPolicy {
	if period == 0 {
		return fsm.RotationPolicy{}
	}
	return fsm.RotationPolicy{Period: int64(period), NextRotationAt: now + int64(period)}
}

func parseKeyID(id string) (kzcrypto.KeyID, error) {
	kid, err := kzcrypto.ParseKeyID(id)
	if err != nil {
		// Like any id that names no key: a malformed id can't name one.
		return kid, fmt.Errorf("key %q is not a valid key id: %w", truncate(id, 64), fsm.ErrKeyNotFound)
	}
	return kid, nil
}

func validateIdempotencyKey(k string) error {
	if len(k) > 128 {
		return invalid("idempotency key is longer than 128 characters")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return invalid("idempotency key must be printable ASCII without spaces")
		}
	}
	return nil
}

func validateState(st fsm.KeyState) error {
	switch st {
	case "", fsm.KeyStateEnabled, fsm.KeyStateDisabled, fsm.KeyStatePendingDeletion, fsm.KeyStatePendingImport:
		return nil
	}
	return invalid("state %q is not one of enabled, disabled, pending_deletion, pending_import", truncate(string(st), 64))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// validateZoneName accepts lowercase DNS-label-like zone names.
func validateZoneName(z string) error {
	if z == "" || len(z) > 63 {
		return invalid("zone name %q must be 1 to 63 characters", truncate(z, 64))
	}
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("zone name %q may hold only a-z, 0-9 and -", truncate(z, 64))
		}
	}
	return nil
}
