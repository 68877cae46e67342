package fsm

import (
	"bytes"
	"strings"
	"testing"
)

// entrySeeds are log entries as Encode writes them, and forms of them
// that only encoding/json reads, or that it reads differently from a
// naive cut.
func entrySeeds(t testing.TB) [][]byte {
	t.Helper()
	enc := func(typ CommandType, payload any) []byte {
		c, err := NewCommand(typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	create := enc(CmdCreateKey, createKey("k1", "org-a"))
	return [][]byte{
		create,
		enc(CmdRotateKey, rotate("k1", "org-a", 2, t0)),
		enc(CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0}),
		enc(IgnorableCommandFlag|77, map[string]int{"x": 1}),
		// A second "type" after the payload: encoding/json takes the last.
		[]byte(`{"type":1,"version":1,"payload":{"id":"k"},"type":10}`),
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1","now":1},"type":32845}`),
		[]byte(`{"type":10,"version":2,"payload":{"key_id":"k1"}}`),
		[]byte(`{"type":010,"version":1,"payload":{"key_id":"k1"}}`),
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1"}}` + "\n"),
		[]byte(`{"type":10, "version":1,"payload":{"key_id":"k1"}}`),
		[]byte(`{"type":65546,"version":1,"payload":{}}`),
		[]byte(`{"type":10,"version":1,"payload":}`),
		[]byte(`{"type":10,"version":1,"payload":null}`),
		[]byte(`{"type":10,"version":1,"payload": null}`),
		[]byte(`{"type":10,"version":1,"payload":null }`),
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1"} }`),
		[]byte(`{"type":10,"version":1,"payload": {"key_id":"k1"}}`),
		// Nested just deep enough for encoding/json to refuse the entry,
		// not the payload alone.
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1","x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`),
		bytes.TrimSuffix(create, []byte("}")),
	}
}

// decodeEntryJSON is what Apply did before decodeEntry: encoding/json
// for the envelope, then the payload.
func decodeEntryJSON(b []byte) (Command, error) {
	cmd, err := DecodeCommand(b)
	if err != nil {
		return Command{}, err
	}
	_, err = decodePayload(cmd)
	return cmd, err
}

// FuzzDecodeEntry: decodeEntry accepts exactly the entries encoding/json
// and decodePayload accept, and reads the same command from them.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range entrySeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := decodeEntryJSON(b)
		got, _, gotErr := decodeEntry(b)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: decodeEntry error %v, encoding/json's %v", b, gotErr, wantErr)
		}
		if wantErr == nil && (got.Type != want.Type || got.Version != want.Version || !bytes.Equal(got.Payload, want.Payload)) {
			t.Fatalf("%q: decodeEntry read %d/%d %q, encoding/json %d/%d %q", b, got.Type, got.Version, got.Payload, want.Type, want.Version, want.Payload)
		}
	})
}

// TestDecodeEntry_EncodedCommandsTakeTheFastPath: what Encode writes is
// cut without encoding/json (else the fast path silently serves nothing).
func TestDecodeEntry_EncodedCommandsTakeTheFastPath(t *testing.T) {
	for _, b := range entrySeeds(t)[:3] {
		c, ok := decodeCommandFast(b)
		if !ok {
			t.Fatalf("%q: not cut", b)
		}
		want, err := DecodeCommand(b)
		if err != nil || c.Type != want.Type || c.Version != want.Version || !bytes.Equal(c.Payload, want.Payload) {
			t.Fatalf("%q: cut into %d/%d %q, want %d/%d %q (%v)", b, c.Type, c.Version, c.Payload, want.Type, want.Version, want.Payload, err)
		}
	}
}
