package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
)

// decodeStd is bindJSON's encoding/json path: the verdict decodeFast must
// agree with whenever it accepts.
func decodeStd(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the top-level object")
	}
	return nil
}

// checkFastDecode runs decodeFast on raw into a zero T and, when it
// accepts, checks encoding/json accepts raw too and decodes the same
// value. It reports whether the fast path accepted.
func checkFastDecode[T any](t *testing.T, raw []byte) bool {
	t.Helper()
	var fast T
	if !decodeFast(raw, &fast) {
		if !reflect.ValueOf(fast).IsZero() {
			t.Fatalf("%T: declined %q but changed the value to %#v", fast, raw, fast)
		}
		return false
	}
	var std T
	if err := decodeStd(raw, &std); err != nil {
		t.Fatalf("%T: fast path accepted %q, encoding/json refuses it: %v", fast, raw, err)
	}
	if !reflect.DeepEqual(fast, std) {
		t.Fatalf("%T from %q:\nfast path     %#v\nencoding/json %#v", fast, raw, fast, std)
	}
	return true
}

type requestKind int

const (
	encryptReq requestKind = iota
	decryptReq
	dataKeyReq
	reEncryptReq
)

func (k requestKind) check(t *testing.T, raw []byte) bool {
	switch k {
	case encryptReq:
		return checkFastDecode[wire.EncryptRequest](t, raw)
	case decryptReq:
		return checkFastDecode[wire.DecryptRequest](t, raw)
	case dataKeyReq:
		return checkFastDecode[wire.GenerateDataKeyRequest](t, raw)
	default:
		return checkFastDecode[wire.ReEncryptRequest](t, raw)
	}
}

func TestDecodeFast(t *testing.T) {
	tests := []struct {
		name   string
		kind   requestKind
		body   string
		accept bool
	}{
		// The shapes clients send.
		{"plaintext", encryptReq, `{"plaintext":"aGVsbG8="}`, true},
		{"plaintext and context", encryptReq, `{"plaintext":"aGk=","encryption_context":{"tenant":"a","purpose":"<b>&c"}}`, true},
		{"plaintext and associated data", encryptReq, `{"plaintext":"aGk=","associated_data":"YWQ="}`, true},
		{"white space everywhere", encryptReq, " \t\r\n{ \"plaintext\" :\n\"aGk=\" ,\t\"encryption_context\" : { \"a\" : \"b\" , \"c\":\"d\" } }\r\n ", true},
		{"empty object", encryptReq, `{}`, true},
		{"empty plaintext", encryptReq, `{"plaintext":""}`, true},
		{"null plaintext", encryptReq, `{"plaintext":null}`, true},
		{"empty context", encryptReq, `{"plaintext":"aGk=","encryption_context":{}}`, true},
		{"null context", encryptReq, `{"plaintext":"aGk=","encryption_context":null}`, true},
		{"repeated context key", encryptReq, `{"encryption_context":{"a":"1","a":"2"}}`, true},
		{"empty context key and value", encryptReq, `{"encryption_context":{"":""}}`, true},
		{"ciphertext", decryptReq, `{"ciphertext":"AQIDBA==","encryption_context":{"a":"b"},"associated_data":null}`, true},
		{"data key", dataKeyReq, `{"key_size":256,"without_plaintext":true,"encryption_context":{"a":"b"},"associated_data":"YWQ="}`, true},
		{"key size 128", dataKeyReq, `{"key_size":128}`, true},
		{"key size 0", dataKeyReq, `{"key_size":0}`, true},
		{"key size -0", dataKeyReq, `{"key_size":-0}`, true},
		{"negative key size", dataKeyReq, `{"key_size":-256}`, true},
		{"nine digit key size", dataKeyReq, `{"key_size":999999999}`, true},
		{"key size null", dataKeyReq, `{"key_size":null,"without_plaintext":null}`, true},
		{"without plaintext false", dataKeyReq, `{"without_plaintext":false}`, true},
		{"re-encrypt", reEncryptReq, `{"ciphertext":"AQID","encryption_context":{"a":"b"},"associated_data":"YQ==","destination_key_id":"0f8e2a44-1c5b-4d6e-9f00-112233445566","destination_encryption_context":{"c":"d"},"destination_associated_data":"Yg=="}`, true},
		{"re-encrypt to the default key", reEncryptReq, `{"ciphertext":"AQID","destination_key_id":"alias/default"}`, true},
		{"empty destination", reEncryptReq, `{"ciphertext":"AQID","destination_key_id":""}`, true},

		// Valid for encoding/json, left to it.
		{"other case", encryptReq, `{"Plaintext":"aGk="}`, false},
		{"upper case", encryptReq, `{"PLAINTEXT":"aGk="}`, false},
		{"Kelvin sign", dataKeyReq, "{\"\u212aey_size\":256}", false},
		{"escaped name", encryptReq, `{"pl\u0061intext":"aGk="}`, false},
		{"escaped value", encryptReq, `{"plaintext":"aG\u0073="}`, false},
		{"escaped slash", reEncryptReq, `{"ciphertext":"AQID","destination_key_id":"alias\/default"}`, false},
		{"escaped newline in base64", encryptReq, `{"plaintext":"aGVs\nbG8="}`, false},
		{"non-ASCII context", encryptReq, `{"encryption_context":{"a":"é"}}`, false},
		{"invalid UTF-8 context", encryptReq, "{\"encryption_context\":{\"a\":\"\xff\"}}", false},
		{"duplicate field", encryptReq, `{"plaintext":"aGk=","plaintext":"aG8="}`, false},
		{"duplicate null field", encryptReq, `{"plaintext":"aGk=","plaintext":null}`, false},
		{"duplicate context", encryptReq, `{"encryption_context":{"a":"1"},"encryption_context":{"b":"2"}}`, false},
		{"duplicate key size", dataKeyReq, `{"key_size":128,"key_size":256}`, false},
		{"null context value", encryptReq, `{"encryption_context":{"a":null}}`, false},
		{"ten digit key size", dataKeyReq, `{"key_size":1000000000}`, false},
		{"key size with zeros after the point", dataKeyReq, `{"key_size":-0.0}`, false},

		// Refused by encoding/json, left to it for the message.
		{"unknown field", encryptReq, `{"plaintext":"aGk=","colour":"red"}`, false},
		{"empty name", encryptReq, `{"":"aGk="}`, false},
		{"field of another request", encryptReq, `{"ciphertext":"aGk="}`, false},
		{"bad base64", encryptReq, `{"plaintext":"aGk"}`, false},
		{"url-safe base64", encryptReq, `{"plaintext":"_-_-"}`, false},
		{"raw newline in base64", encryptReq, "{\"plaintext\":\"aGVs\nbG8=\"}", false},
		{"raw carriage return in base64", encryptReq, "{\"plaintext\":\"aGVs\rbG8=\"}", false},
		{"control byte", encryptReq, "{\"encryption_context\":{\"a\":\"\x01\"}}", false},
		{"base64 not a string", encryptReq, `{"plaintext":12}`, false},
		{"context of numbers", encryptReq, `{"encryption_context":{"a":1}}`, false},
		{"context not an object", encryptReq, `{"encryption_context":"a"}`, false},
		{"float key size", dataKeyReq, `{"key_size":256.0}`, false},
		{"exponent key size", dataKeyReq, `{"key_size":2.56e2}`, false},
		{"integer exponent key size", dataKeyReq, `{"key_size":1e2}`, false},
		{"huge key size", dataKeyReq, `{"key_size":99999999999999999999}`, false},
		{"leading zero", dataKeyReq, `{"key_size":0256}`, false},
		{"plus sign", dataKeyReq, `{"key_size":+256}`, false},
		{"lone minus", dataKeyReq, `{"key_size":-}`, false},
		{"key size as a string", dataKeyReq, `{"key_size":"256"}`, false},
		{"boolean as a string", dataKeyReq, `{"without_plaintext":"true"}`, false},
		{"boolean as a number", dataKeyReq, `{"without_plaintext":1}`, false},
		{"capital literal", dataKeyReq, `{"without_plaintext":True}`, false},
		{"truncated literal", dataKeyReq, `{"without_plaintext":tru}`, false},
		{"literal run on", dataKeyReq, `{"without_plaintext":truex}`, false},
		{"null run on", encryptReq, `{"plaintext":nullx}`, false},
		{"trailing garbage", encryptReq, `{"plaintext":"aGk="} garbage`, false},
		{"trailing object", encryptReq, `{}{}`, false},
		{"trailing comma after the object", encryptReq, `{"plaintext":"aGk="},`, false},
		{"trailing comma in the object", encryptReq, `{"plaintext":"aGk=",}`, false},
		{"trailing comma in the context", encryptReq, `{"encryption_context":{"a":"b",}}`, false},
		{"missing colon", encryptReq, `{"plaintext" "aGk="}`, false},
		{"missing comma", encryptReq, `{"plaintext":"aGk=" "associated_data":"YQ=="}`, false},
		{"unterminated string", encryptReq, `{"plaintext":"aGk=`, false},
		{"unterminated object", encryptReq, `{"plaintext":"aGk="`, false},
		{"unterminated context", encryptReq, `{"encryption_context":{"a":"b"`, false},
		{"array", encryptReq, `["aGk="]`, false},
		{"string", encryptReq, `"aGk="`, false},
		{"null", encryptReq, `null`, false},
		{"byte order mark", encryptReq, "\ufeff{}", false},
		{"form feed is not JSON space", encryptReq, "{\f}", false},
		{"single quotes", encryptReq, `{'plaintext':'aGk='}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.check(t, []byte(tt.body)); got != tt.accept {
				t.Errorf("accepted: got %v, want %v", got, tt.accept)
			}
		})
	}
}

// Where encoding/json tells an empty value from a missing one, so does
// the fast path.
func TestDecodeFast_EmptyIsNotNil(t *testing.T) {
	var r wire.EncryptRequest
	if !decodeFast([]byte(`{"plaintext":"","encryption_context":{}}`), &r) {
		t.Fatal("declined")
	}
	if r.Plaintext == nil || len(r.Plaintext) != 0 || r.EncryptionContext == nil || len(r.EncryptionContext) != 0 {
		t.Errorf("got %#v, want an empty non-nil plaintext and context", r)
	}
	r = wire.EncryptRequest{}
	if !decodeFast([]byte(`{"plaintext":null,"encryption_context":null}`), &r) {
		t.Fatal("declined")
	}
	if r.Plaintext != nil || r.EncryptionContext != nil {
		t.Errorf("got %#v, want nil plaintext and context", r)
	}
}

// encoding/json merges into what v holds; the fast path builds a fresh
// value, so it leaves a value that is not zero to encoding/json.
func TestDecodeFast_DeclinesFilledValue(t *testing.T) {
	r := wire.EncryptRequest{EncryptionContext: map[string]string{"kept": "x"}}
	if decodeFast([]byte(`{"plaintext":"aGk="}`), &r) {
		t.Errorf("decoded into a filled value: %#v", r)
	}
	if decodeFast([]byte(`{}`), &struct{}{}) {
		t.Error("decoded a type it does not know")
	}
}

// Whatever json.Marshal writes for a request with plain strings, the fast
// path takes.
func TestDecodeFast_AcceptsMarshaled(t *testing.T) {
	pt := make([]byte, 300)
	for i := range pt {
		pt[i] = byte(i)
	}
	ctx := map[string]string{"tenant": "acme", "purpose": "backup", "": ""}
	for _, v := range []any{
		wire.EncryptRequest{Plaintext: pt, EncryptionContext: ctx, AssociatedData: pt[:7]},
		wire.DecryptRequest{Ciphertext: pt, EncryptionContext: ctx},
		wire.GenerateDataKeyRequest{KeySize: 128, WithoutPlaintext: true, EncryptionContext: ctx, AssociatedData: pt[:1]},
		wire.ReEncryptRequest{Ciphertext: pt, AssociatedData: pt[:2], DestinationKeyID: "alias/default", DestinationEncryptionContext: ctx, DestinationAssociatedData: pt[:3]},
	} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		switch v.(type) {
		case wire.EncryptRequest:
			ok = encryptReq.check(t, raw)
		case wire.DecryptRequest:
			ok = decryptReq.check(t, raw)
		case wire.GenerateDataKeyRequest:
			ok = dataKeyReq.check(t, raw)
		case wire.ReEncryptRequest:
			ok = reEncryptReq.check(t, raw)
		}
		if !ok {
			t.Errorf("%T: declined %s", v, raw)
		}
	}
}

// The fast path allocates what the request holds, and nothing else.
func TestDecodeFast_Allocations(t *testing.T) {
	pt := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tt := range []struct {
		body   string
		allocs float64
	}{
		{`{"plaintext":"` + pt + `"}`, 1},
		{`{"plaintext":"` + pt + `","associated_data":"YWQ="}`, 2},
	} {
		raw := []byte(tt.body)
		got := testing.AllocsPerRun(100, func() {
			var r wire.EncryptRequest
			if !decodeEncryptRequest(raw, &r) {
				t.Fatalf("declined %s", raw)
			}
		})
		if got != tt.allocs {
			t.Errorf("%s: got %v allocations, want %v", tt.body, got, tt.allocs)
		}
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, s := range []string{
		`{"plaintext":"aGVsbG8="}`,
		`{"plaintext":"aGk=","encryption_context":{"a":"b","c":"d"},"associated_data":"YWQ="}`,
		" {\t\"plaintext\" : \"aGk=\" ,\r\n\"encryption_context\":{ } } \n",
		`{"plaintext":"","encryption_context":{}}`,
		`{"plaintext":null,"encryption_context":null,"associated_data":null}`,
		`{"encryption_context":{"a":"1","a":"2"}}`,
		`{"ciphertext":"AQIDBA==","encryption_context":{"<a>":"&"}}`,
		`{"key_size":256,"without_plaintext":true}`,
		`{"key_size":-0,"without_plaintext":false}`,
		`{"key_size":-128}`,
		`{"key_size":256.0}`,
		`{"key_size":2.56e2}`,
		`{"key_size":99999999999999999999}`,
		`{"key_size":0256}`,
		`{"key_size":"256"}`,
		`{"ciphertext":"AQID","destination_key_id":"alias/default","destination_encryption_context":{"c":"d"},"destination_associated_data":"Yg=="}`,
		`{"Plaintext":"aGk="}`,
		`{"CipherText":"aGk="}`,
		`{"pl\u0061intext":"aGk="}`,
		`{"plaintext":"aGVs\nbG8="}`,
		"{\"plaintext\":\"aGVs\nbG8=\"}",
		`{"encryption_context":{"a":"\u00e9"}}`,
		`{"encryption_context":{"a":"é"}}`,
		"{\"encryption_context\":{\"a\":\"\xff\"}}",
		`{"plaintext":"aGk=","plaintext":null}`,
		`{"encryption_context":{"a":"1"},"encryption_context":{"b":"2"}}`,
		`{"encryption_context":{"a":null}}`,
		`{"plaintext":"aGk="} x`,
		`{"plaintext":"aGk="}{}`,
		`{"plaintext":"aGk=",}`,
		`{"plaintext":"aGk"}`,
		`{"plaintext":12}`,
		`{"colour":"red"}`,
		`{"without_plaintext":truex}`,
		`["aGk="]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for k := encryptReq; k <= reEncryptReq; k++ {
			k.check(t, raw)
		}
	})
}

func TestAppendResponses(t *testing.T) {
	id := "0f8e2a44-1c5b-4d6e-9f00-112233445566"
	ct := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 33)
	for _, tt := range []struct {
		keyID   string
		version uint32
		a, b    []byte
		fast    bool
	}{
		{id, 1, ct, ct[:32], true},
		{id, 4294967295, nil, nil, true},
		{id, 0, []byte{}, []byte{}, true},
		{"", 7, ct[:1], ct[:2], true},
		{"alias/default\x7f", 2, ct[:3], nil, true},
		{"a<b", 1, ct, ct, false},
		{"a>b", 1, ct, ct, false},
		{"a&b", 1, ct, ct, false},
		{`a"b`, 1, ct, ct, false},
		{`a\b`, 1, ct, ct, false},
		{"a\nb", 1, ct, ct, false},
		{"é", 1, ct, ct, false},
		{"\u2028", 1, ct, ct, false},
		{"\xff", 1, ct, ct, false},
	} {
		if got := checkAppendResponses(t, tt.keyID, tt.version, tt.a, tt.b); got != tt.fast {
			t.Errorf("key id %q: encoded without encoding/json: got %v, want %v", tt.keyID, got, tt.fast)
		}
	}
}

// checkAppendResponses encodes the four crypto responses of the given
// parts and checks each is json.Marshal's, byte for byte, when the fast
// encoder does not decline. It reports whether it did not.
func checkAppendResponses(t *testing.T, keyID string, version uint32, a, b []byte) bool {
	t.Helper()
	fast := checkAppend(t, wire.EncryptResponse{KeyID: keyID, KeyVersion: version, Ciphertext: a}, appendEncryptResponse)
	checkAppend(t, wire.DecryptResponse{KeyID: keyID, KeyVersion: version, Plaintext: a}, appendDecryptResponse)
	checkAppend(t, wire.GenerateDataKeyResponse{KeyID: keyID, KeyVersion: version, Plaintext: a, Ciphertext: b}, appendGenerateDataKeyResponse)
	checkAppend(t, wire.ReEncryptResponse{KeyID: keyID, KeyVersion: version, Ciphertext: b}, appendReEncryptResponse)
	return fast
}

func checkAppend[T any](t *testing.T, v T, appendJSON func([]byte, T) ([]byte, bool)) bool {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("prefix")
	got, ok := appendJSON(prefix, v)
	if !ok {
		return false
	}
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("%T:\n got %s\nwant %s", v, got, want)
	}
	return true
}

func FuzzFastEncode(f *testing.F) {
	for _, s := range []string{"0f8e2a44-1c5b-4d6e-9f00-112233445566", "", "alias/default", "<>&", `"\`, "\u2028", "é", "\xff", "\x00\x7f"} {
		f.Add(s, uint32(len(s)), []byte(s), []byte(s+"x"), len(s)%2 == 0, len(s)%3 == 0)
	}
	f.Fuzz(func(t *testing.T, keyID string, version uint32, a, b []byte, nilA, nilB bool) {
		if nilA {
			a = nil
		}
		if nilB {
			b = nil
		}
		fast := checkAppendResponses(t, keyID, version, a, b)
		// Only a key id encoding/json changes is left to it.
		quoted, _ := json.Marshal(keyID)
		if !fast && string(quoted) == `"`+keyID+`"` && !hasNonASCII(keyID) {
			t.Fatalf("declined key id %q, which needs no escaping", keyID)
		}
	})
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// respondJSON answers exactly as c.JSON does: status, headers and body,
// whether it encodes the value itself or declines.
func TestRespondJSON_MatchesGin(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	ct := []byte("ciphertext")
	for _, keyID := range []string{"0f8e2a44-1c5b-4d6e-9f00-112233445566", "<escaped>"} {
		v := wire.GenerateDataKeyResponse{KeyID: keyID, KeyVersion: 3, Plaintext: ct[:4], Ciphertext: ct}

		want := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(want)
		c.JSON(200, v)

		got := httptest.NewRecorder()
		c, _ = gin.CreateTestContext(got)
		respondJSON(c, v, appendGenerateDataKeyResponse)

		if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("key id %q:\n got %d %v %s\nwant %d %v %s", keyID, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

// BenchmarkCryptoJSON decodes a 32-byte encrypt request and encodes its
// response, as the encrypt route does, by the fast path and by
// encoding/json (bindJSON's decoder and c.JSON's Marshal).
func BenchmarkCryptoJSON(b *testing.B) {
	raw := []byte(`{"plaintext":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + `"}`)
	// An envelope of 32 bytes: 49-byte header, sealed plaintext, GCM tag.
	res := wire.EncryptResponse{KeyID: "0f8e2a44-1c5b-4d6e-9f00-112233445566", KeyVersion: 1, Ciphertext: bytes.Repeat([]byte{9}, 49+32+16)}

	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var req wire.EncryptRequest
			if !decodeFast(raw, &req) {
				b.Fatal("declined")
			}
			var ok bool
			if buf, ok = appendEncryptResponse(buf[:0], res); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req wire.EncryptRequest
			if err := decodeStd(raw, &req); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}
