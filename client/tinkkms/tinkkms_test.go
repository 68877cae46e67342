package tinkkms_test

import (
	"strings"
	"testing"

	"github.com/keyzone/keyzone/client/tinkkms"
)

func TestNewClient_Defaults(t *testing.T) {
	t.Setenv("KEYZONE_ADDR", "")
	t.Setenv("KEYZONE_TOKEN", "")
	if _, err := tinkkms.NewClient("keyzone://"); err == nil || !strings.Contains(err.Error(), "KEYZONE_ADDR") {
		t.Errorf("no address: %v, want an error naming KEYZONE_ADDR", err)
	}
	t.Setenv("KEYZONE_ADDR", "http://127.0.0.1:1")
	if _, err := tinkkms.NewClient("keyzone://"); err == nil || !strings.Contains(err.Error(), "KEYZONE_TOKEN") {
		t.Errorf("no token: %v, want an error naming KEYZONE_TOKEN", err)
	}
	t.Setenv("KEYZONE_TOKEN", "t")
	if _, err := tinkkms.NewClient("keyzone://"); err != nil {
		t.Errorf("address and token from the environment: %v", err)
	}
	if _, err := tinkkms.NewClient("gcp-kms://", tinkkms.WithAddress("http://x"), tinkkms.WithToken("t")); err == nil {
		t.Error("a prefix of another scheme was accepted")
	}
	if _, err := tinkkms.NewClient("keyzone://", tinkkms.WithAddress("not a url"), tinkkms.WithToken("t")); err == nil {
		t.Error("a malformed address was accepted")
	}
}

func TestClient_SupportedAndGetAEAD(t *testing.T) {
	all, err := tinkkms.NewClient("keyzone://", tinkkms.WithAddress("http://127.0.0.1:1"), tinkkms.WithToken("t"))
	if err != nil {
		t.Fatal(err)
	}
	one, err := tinkkms.NewClient("keyzone://k1", tinkkms.WithAddress("http://127.0.0.1:1"), tinkkms.WithToken("t"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		c    *tinkkms.Client
		uri  string
		want bool
	}{
		{all, "keyzone://k1", true},
		{all, "Keyzone://k1", true},
		{all, "keyzone://", false},
		{all, "keyzone://a/b", false},
		{all, "keyzone://a?b", false},
		{all, "aws-kms://k1", false},
		{all, "keyzone:/k1", false},
		{one, "keyzone://k1", true},
		{one, "keyzone://k2", false},
	} {
		if got := c.c.Supported(c.uri); got != c.want {
			t.Errorf("Supported(%q) = %v, want %v", c.uri, got, c.want)
		}
		_, err := c.c.GetAEAD(c.uri)
		if (err == nil) != c.want {
			t.Errorf("GetAEAD(%q): %v", c.uri, err)
		}
	}
}
