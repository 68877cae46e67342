package crypto

import (
	"bytes"
	"testing"
)

// fuzzSeed returns fixed material, associated data and a valid ciphertext,
// made with a deterministic Rand so the seed corpus is stable across runs.
func fuzzSeed(tb testing.TB) (c *Cipher, material, ad, ct []byte) {
	tb.Helper()
	material = byteRange(0x20, 0x40)
	ad = []byte("\x00\x04acme\x01\x00\x00\x00\x01\x00\x00\x00\x01a\x00\x00\x00\x01b")
	c = &Cipher{Rand: bytes.NewReader(byteRange(0, SaltSize+NonceSize)), MaxPayload: 256}
	ct, err := c.Seal(material, KeyID{0x11, 15: 0x22}, 3, []byte("fuzz plaintext"), ad)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	c.Rand = nil
	return c, material, ad, ct
}

func FuzzParseHeader(f *testing.F) {
	_, _, _, ct := fuzzSeed(f)
	f.Add(ct)
	f.Add(ct[:HeaderSize+gcmTagSize])
	f.Add(ct[:HeaderSize])
	f.Add([]byte{})
	f.Add([]byte{FormatV1})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, sealed, err := ParseHeader(in)
		if err != nil {
			if err != ErrDecrypt {
				t.Fatalf("error: got %v, want ErrDecrypt", err)
			}
			return
		}
		if h.Format != FormatV1 || h.Version == 0 || len(sealed) < gcmTagSize {
			t.Fatalf("accepted header %+v with %d sealed bytes", h, len(sealed))
		}
		if got := append(h.Bytes(), sealed...); !bytes.Equal(got, in) {
			t.Fatalf("re-encoding: got %x, want %x", got, in)
		}
	})
}

func FuzzOpen(f *testing.F) {
	c, material, ad, ct := fuzzSeed(f)
	f.Add(ct, ad)
	f.Add(ct, []byte{})
	f.Add(ct[:len(ct)-1], ad)
	f.Add(append(bytes.Clone(ct), make([]byte, 300)...), ad)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, in, inAD []byte) {
		pt, err := c.Open(material, in, inAD)
		switch err {
		case nil:
			// Forging is infeasible, so only the untouched seed opens.
			if !bytes.Equal(in, ct) || !bytes.Equal(inAD, ad) {
				t.Fatalf("opened a modified ciphertext or ad: %x / %x", in, inAD)
			}
			if string(pt) != "fuzz plaintext" {
				t.Fatalf("plaintext: got %q, want %q", pt, "fuzz plaintext")
			}
		case ErrDecrypt:
		case ErrPayloadTooLarge:
			if len(in) <= HeaderSize+c.MaxPayload+gcmTagSize {
				t.Fatalf("ErrPayloadTooLarge for %d bytes, limit %d", len(in), HeaderSize+c.MaxPayload+gcmTagSize)
			}
		default:
			t.Fatalf("error: got %v, want ErrDecrypt or ErrPayloadTooLarge", err)
		}
	})
}
