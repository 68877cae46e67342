package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAssociatedData_Golden(t *testing.T) {
	tests := []struct {
		name string
		org  string
		ctx  map[string]string
		raw  []byte
		want []byte
	}{
		{
			name: "no context",
			org:  "acme",
			want: []byte("\x00\x04acme\x00"),
		},
		{
			name: "map sorted by key",
			org:  "acme",
			ctx:  map[string]string{"b": "2", "a": "1"},
			want: []byte("\x00\x04acme\x01\x00\x00\x00\x02" +
				"\x00\x00\x00\x01a\x00\x00\x00\x011" +
				"\x00\x00\x00\x01b\x00\x00\x00\x012"),
		},
		{
			name: "raw",
			org:  "acme",
			raw:  []byte("xyz"),
			want: []byte("\x00\x04acme\x02\x00\x00\x00\x03xyz"),
		},
		{
			name: "empty organization",
			want: []byte("\x00\x00\x00"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AssociatedData(tt.org, tt.ctx, tt.raw)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAssociatedData_OrderIndependent(t *testing.T) {
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "", "z", "A", "\xff"}
	first, err := AssociatedData("org", buildMap(keys), nil)
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	for i := 0; i < 20; i++ {
		rotated := append(append([]string{}, keys[i%len(keys):]...), keys[:i%len(keys)]...)
		got, _ := AssociatedData("org", buildMap(rotated), nil)
		if !bytes.Equal(got, first) {
			t.Fatalf("insertion order %v: got %q, want %q", rotated, got, first)
		}
	}
}

func buildMap(keys []string) map[string]string {
	m := make(map[string]string)
	for _, k := range keys {
		m[k] = "v-" + k
	}
	return m
}

func TestAssociatedData_NoContextForms(t *testing.T) {
	want, _ := AssociatedData("o", nil, nil)
	tests := []struct {
		name string
		ctx  map[string]string
		raw  []byte
	}{
		{"empty map", map[string]string{}, nil},
		{"empty raw", nil, []byte{}},
		{"both empty", map[string]string{}, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AssociatedData("o", tt.ctx, tt.raw)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("got %q, %v, want %q, nil", got, err, want)
			}
		})
	}
}

// TestAssociatedData_Distinct checks that inputs that differ in any way,
// including ones a naive concatenation would confuse, encode differently.
func TestAssociatedData_Distinct(t *testing.T) {
	type input struct {
		name string
		org  string
		ctx  map[string]string
		raw  []byte
	}
	inputs := []input{
		{"none", "acme", nil, nil},
		{"other org", "acme2", nil, nil},
		{"empty org", "", nil, nil},
		{"a:bc", "acme", map[string]string{"a": "bc"}, nil},
		{"ab:c", "acme", map[string]string{"ab": "c"}, nil},
		{"a:bc other org", "acm", map[string]string{"a": "bc"}, nil},
		{"a:b", "acme", map[string]string{"a": "b"}, nil},
		{"a:b c:d", "acme", map[string]string{"a": "b", "c": "d"}, nil},
		{"a:bc:d (one pair)", "acme", map[string]string{"a": "b\x00\x00\x00\x01c\x00\x00\x00\x01d"}, nil},
		{"empty key", "acme", map[string]string{"": "a"}, nil},
		{"empty value", "acme", map[string]string{"a": ""}, nil},
		{"raw abc", "acme", nil, []byte("abc")},
		{"raw a", "acme", nil, []byte("a")},
		{"org absorbs tag", "acme\x00", nil, nil},
	}
	// Raw bytes equal to a map's encoded tail must still differ from the map.
	mapAD, _ := AssociatedData("acme", map[string]string{"a": "bc"}, nil)
	inputs = append(inputs, input{"raw mimics map", "acme", nil, mapAD[2+4+1:]})

	seen := make(map[string]string)
	for _, in := range inputs {
		got, err := AssociatedData(in.org, in.ctx, in.raw)
		if err != nil {
			t.Fatalf("%s: got error %v, want nil", in.name, err)
		}
		if prev, ok := seen[string(got)]; ok {
			t.Errorf("%s: got the same bytes as %s (%q), want different", in.name, prev, got)
		}
		seen[string(got)] = in.name
	}
}

func TestAssociatedData_Invalid(t *testing.T) {
	tests := []struct {
		name string
		org  string
		ctx  map[string]string
		raw  []byte
	}{
		{"map and raw", "o", map[string]string{"a": "b"}, []byte("x")},
		{"organization too long", strings.Repeat("o", 1<<16), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := AssociatedData(tt.org, tt.ctx, tt.raw); !errors.Is(err, ErrContext) {
				t.Errorf("got %q, %v, want ErrContext", got, err)
			}
		})
	}
	if _, err := AssociatedData(strings.Repeat("o", 1<<16-1), nil, nil); err != nil {
		t.Errorf("65535-byte organization: got %v, want nil", err)
	}
}

func TestHeader_BytesParse(t *testing.T) {
	h := Header{
		Format:  FormatV1,
		KeyID:   KeyID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Version: 0x01020304,
		Salt:    [SaltSize]byte{0xa0, 15: 0xaf},
		Nonce:   [NonceSize]byte{0xb0, 11: 0xbb},
	}
	b := h.Bytes()
	if len(b) != HeaderSize || HeaderSize != 49 {
		t.Fatalf("length: got %d (HeaderSize %d), want 49", len(b), HeaderSize)
	}
	if b[0] != 1 || b[1] != 1 || b[16] != 16 || !bytes.Equal(b[17:21], []byte{1, 2, 3, 4}) ||
		b[21] != 0xa0 || b[36] != 0xaf || b[37] != 0xb0 || b[48] != 0xbb {
		t.Errorf("layout: got %x, want format|id|be32 version|salt|nonce", b)
	}
	sealedIn := bytes.Repeat([]byte{0xcc}, 20)
	got, sealed, err := ParseHeader(append(b, sealedIn...))
	if err != nil {
		t.Fatalf("ParseHeader: got error %v, want nil", err)
	}
	if got != h {
		t.Errorf("header: got %+v, want %+v", got, h)
	}
	if !bytes.Equal(sealed, sealedIn) {
		t.Errorf("sealed: got %x, want %x", sealed, sealedIn)
	}
}

func TestParseHeader_Invalid(t *testing.T) {
	valid := append(Header{Format: FormatV1, Version: 1}.Bytes(), make([]byte, 16)...)
	with := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	if _, _, err := ParseHeader(valid); err != nil {
		t.Fatalf("minimal valid input: got %v, want nil", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"format only", []byte{FormatV1}},
		{"header only", valid[:HeaderSize]},
		{"sealed shorter than tag", valid[:len(valid)-1]},
		{"format 0", with(0, 0)},
		{"format 2", with(0, 2)},
		{"format 0xff", with(0, 0xff)},
		{"version 0", with(1+KeyIDSize+3, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, sealed, err := ParseHeader(tt.in)
			if err != ErrDecrypt {
				t.Errorf("got %+v, %x, %v, want ErrDecrypt", h, sealed, err)
			}
		})
	}
}
