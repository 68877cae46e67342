package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// BenchmarkService measures the key service's crypto calls as a node
// serves them: a real one-node zone, the key's material already unwrapped
// (the first call does it), 32-byte payloads, callers in parallel. Beside
// the HTTP benchmarks of `keyzone bench`, this is the KMS work alone.
func BenchmarkService(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{})
	c.WaitReady(30 * time.Second)
	s := c.Leader().Server().Keys()
	ctx := context.Background()
	k, err := s.CreateKey(ctx, keys.CreateParams{Organization: org, Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 32)
	enc, err := s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: pt})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		call func() error
	}{
		{"encrypt-32B", func() error {
			_, err := s.Encrypt(ctx, keys.EncryptParams{Organization: org, KeyID: k.ID, Plaintext: pt})
			return err
		}},
		{"decrypt-32B", func() error {
			_, err := s.Decrypt(ctx, keys.DecryptParams{Organization: org, Ciphertext: enc.Ciphertext})
			return err
		}},
		{"generate-data-key", func() error {
			_, err := s.GenerateDataKey(ctx, keys.DataKeyParams{Organization: org, KeyID: k.ID})
			return err
		}},
		{"re-encrypt-32B", func() error {
			_, err := s.ReEncrypt(ctx, keys.ReEncryptParams{Organization: org, Ciphertext: enc.Ciphertext})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
