package api_test

import (
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
)

// TestAPI_HostileCryptoInputs throws malformed, truncated, oversized and
// mismatched input at the crypto routes: none may produce a 5xx.
func TestAPI_HostileCryptoInputs(t *testing.T) {
	e := newEnv(t, func(c *apiConfig) { c.MaxPayload = 4096 })
	k := e.createKey(t, "k")
	enc := decode[wire.EncryptResponse](t, e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"`+b64("secret")+`"}`))
	ct := enc.Ciphertext
	std := base64.StdEncoding.EncodeToString

	flipped := append([]byte(nil), ct...)
	flipped[len(flipped)-1] ^= 1
	bodies := []string{
		``, `null`, `true`, `0`, `"x"`, `[]`, `{}`, `{`, `}`, `{"ciphertext":null}`, `{"ciphertext":""}`,
		`{"ciphertext":"="}`, `{"ciphertext":"===="}`, `{"ciphertext":"` + std(ct[:1]) + `"}`,
		`{"ciphertext":"` + std(ct[:len(ct)/2]) + `"}`, `{"ciphertext":"` + std(flipped) + `"}`,
		`{"ciphertext":"` + std(append(ct, 0)) + `"}`, `{"ciphertext":"` + std(make([]byte, 4000)) + `"}`,
		`{"ciphertext":"` + std(ct) + `","encryption_context":{"a":"b"}}`,
		`{"ciphertext":"` + std(ct) + `","associated_data":"` + b64("x") + `"}`,
		`{"ciphertext":"` + std(ct) + `","encryption_context":{"a":"b"},"associated_data":"` + b64("x") + `"}`,
		`{"ciphertext":"` + std(ct) + `","encryption_context":null}`,
		`{"ciphertext":"` + std(ct) + `","encryption_context":[]}`,
		`{"ciphertext":"` + std(ct) + `","encryption_context":{"":""}}`,
		`{"ciphertext":"` + std(ct) + `","encryption_context":{"\u0000":"\ud800"}}`,
		`{"plaintext":"` + b64("x") + `"}`, `{"plaintext":"` + std(make([]byte, 5000)) + `"}`,
		`{"plaintext":"` + std(make([]byte, 4096)) + `","encryption_context":{"k":"` + strings.Repeat("v", 10000) + `"}}`,
		`{"ciphertext":"` + std(ct) + `","destination_key_id":"../../etc/passwd"}`,
		`{"ciphertext":"` + std(ct) + `","destination_key_id":"nope"}`,
		`{"key_size":-1}`, `{"key_size":1e100}`, `{"key_size":"256"}`, `{"key_size":257}`, `{"without_plaintext":"yes"}`,
		`{"ciphertext":"` + std(ct) + `"` + strings.Repeat(` `, 100) + `}`,
		`{"ciphertext":"` + std(ct) + `","ciphertext":"` + std(flipped) + `"}`,
		`{"CipherText":"` + std(ct) + `"}`,
		strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000),
		`{"encryption_context":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}`,
		"{\"ciphertext\":\"\xff\xfe\"}",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rng.IntN(len(ct)+8))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 0 && rng.IntN(2) == 0 {
			copy(b, ct[:min(len(ct), len(b)/2)]) // a plausible header, garbage after
		}
		bodies = append(bodies, `{"ciphertext":"`+std(b)+`"}`)
	}
	paths := []string{
		"/v1/decrypt", "/v1/keys/" + k.ID + "/decrypt", "/v1/keys/" + k.ID + "/encrypt",
		"/v1/keys/" + k.ID + "/re-encrypt", "/v1/re-encrypt", "/v1/keys/" + k.ID + "/generate-data-key",
		"/v1/keys/nope/encrypt", "/v1/keys/%2e%2e/decrypt",
	}
	for _, p := range paths {
		for _, b := range bodies {
			rec := e.do(t, "POST", p, b)
			if rec.Code >= 500 {
				t.Errorf("POST %s %.80q: got %d %s", p, b, rec.Code, rec.Body)
				continue
			}
			if rec.Code != http.StatusOK {
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("POST %s %.80q: error Content-Type %q", p, b, ct)
				}
			}
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, "[ERROR]") {
		t.Errorf("hostile input logged at Error: %s", logs)
	}
}
