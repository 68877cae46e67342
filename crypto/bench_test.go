package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

// benchSizes are the payload sizes of the Seal/Open benchmarks and of the
// raw AES-GCM baseline beside them.
var benchSizes = []int{32, 4 << 10, 64 << 10}

func benchName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func BenchmarkSeal(b *testing.B) {
	c := NewCipher(0)
	material := make([]byte, MaterialSize)
	ad := []byte("\x00\x04acme\x00")
	for _, n := range benchSizes {
		pt := make([]byte, n)
		b.Run(benchName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Seal(material, KeyID{1}, 1, pt, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	c := NewCipher(0)
	material := make([]byte, MaterialSize)
	ad := []byte("\x00\x04acme\x00")
	for _, n := range benchSizes {
		ct, err := c.Seal(material, KeyID{1}, 1, make([]byte, n), ad)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(benchName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Open(material, ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawGCMSeal is the limit Seal approaches: AES-256-GCM under a
// fixed, already-expanded key with a fixed nonce, no derivation, no
// randomness. The gap is the per-message HKDF, key expansion and salt and
// nonce draw, which dominate small payloads.
func BenchmarkRawGCMSeal(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, NonceSize)
	ad := make([]byte, HeaderSize+9)
	for _, n := range benchSizes {
		pt := make([]byte, n)
		b.Run(benchName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				gcm.Seal(nil, nonce, pt, ad)
			}
		})
	}
}
