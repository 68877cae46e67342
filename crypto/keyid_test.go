package crypto

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewKeyID(t *testing.T) {
	tests := []struct {
		name string
		rand []byte
	}{
		{"zeros", make([]byte, 16)},
		{"ones", bytes.Repeat([]byte{0xff}, 16)},
		{"pattern", byteRange(0x10, 0x20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := NewKeyID(bytes.NewReader(tt.rand))
			if err != nil {
				t.Fatalf("NewKeyID: got error %v, want nil", err)
			}
			if s := id.String(); !uuidV4.MatchString(s) {
				t.Errorf("String: got %q, want a lowercase UUID v4", s)
			}
		})
	}

	a, _ := NewKeyID(nil)
	b, _ := NewKeyID(nil)
	if a == b {
		t.Errorf("two random ids: got %s twice, want different", a)
	}
	if _, err := NewKeyID(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Errorf("short reader: got nil error, want one")
	}
}

func TestKeyID_RoundTrip(t *testing.T) {
	tests := []string{
		"00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
		"0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			id, err := ParseKeyID(s)
			if err != nil {
				t.Fatalf("ParseKeyID(%q): got error %v, want nil", s, err)
			}
			if got := id.String(); got != s {
				t.Errorf("String: got %q, want %q", got, s)
			}
		})
	}

	id, _ := NewKeyID(nil)
	back, err := ParseKeyID(id.String())
	if err != nil || back != id {
		t.Errorf("random id round trip: got %v, %v, want %v, nil", back, err, id)
	}
	if want := [16]byte{0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x49, 0x78, 0x86, 0x95, 0xa4, 0xb3, 0xc2, 0xd1, 0xe0, 0xf0}; KeyID(want) != mustParseKeyID(t, tests[2]) {
		t.Errorf("bytes: got %x, want %x", mustParseKeyID(t, tests[2]), want)
	}
}

func mustParseKeyID(t *testing.T, s string) KeyID {
	t.Helper()
	id, err := ParseKeyID(s)
	if err != nil {
		t.Fatalf("ParseKeyID(%q): %v", s, err)
	}
	return id
}

func TestParseKeyID_Invalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"uppercase", "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F0"},
		{"one uppercase", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fA"},
		{"no dashes", "0f1e2d3c4b5a49788695a4b3c2d1e0f0"},
		{"no dashes padded", "0f1e2d3c4b5a49788695a4b3c2d1e0f0abcd"},
		{"dash moved", "0f1e2d3-c4b5a-4978-8695-a4b3c2d1e0f0"},
		{"too short", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f"},
		{"too long", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f00"},
		{"non-hex", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fg"},
		{"braces", "{f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f}"},
		{"urn", "urn:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"},
		{"space", " 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f"},
		{"non-ascii", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0\u00e9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ParseKeyID(tt.in); !errors.Is(err, ErrInvalidKeyID) {
				t.Errorf("ParseKeyID(%q): got %v, %v, want ErrInvalidKeyID", tt.in, got, err)
			}
		})
	}
}
