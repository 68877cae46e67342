package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/test/clustertest"
)

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runServerCommand runs `keyzone server ARGS` until ctx ends.
func runServerCommand(ctx context.Context, args ...string) error {
	cmd := newServerCommand()
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	return cmd.ExecuteContext(ctx)
}

// TestServer_TenancyFlags: the operator token, the home zone and the
// organizations' default limits reach the node; the root token's old
// flags are refused with their new names.
func TestServer_TenancyFlags(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 32)
	rand.Read(raw)
	rekFile := filepath.Join(dir, "rek.b64")
	if err := os.WriteFile(rekFile, []byte(base64.StdEncoding.EncodeToString(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	const operator = "server-test-operator-token"
	base := []string{"--node-id", "n1", "--zone", "zone-a", "--data-dir", filepath.Join(dir, "n1"), "--root-key-file", rekFile,
		"--log-level", "error", "--bootstrap-expect", "1", "--gossip-profile", "local"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--root-token", operator}, "renamed --operator-token"},
		{[]string{"--root-token-file", rekFile}, "renamed --operator-token"},
		{nil, "operator token: give --operator-token-file"},
		{[]string{"--operator-token", "short"}, "at least 16 characters"},
		{[]string{"--operator-token", operator, "--org-key-quota", "0"}, "--org-key-quota 0"},
	} {
		err := runServerCommand(t.Context(), append(append([]string{}, base...), tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("server %v: got %v, want %q", tt.args, err, tt.want)
		}
	}

	tokenFile := filepath.Join(dir, "operator")
	if err := os.WriteFile(tokenFile, []byte(operator+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServerCommand(ctx, append(append([]string{}, base...),
			"--api-addr", api, "--raft-addr", freeAddr(t), "--gossip-addr", freeAddr(t),
			"--operator-token-file", tokenFile, "--home-zone", "zone-a",
			"--org-key-quota", "7", "--org-rate-limit", "-1", "--org-rate-burst", "5")...)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	op, err := client.New(api, operator, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var me wire.Principal
	clustertest.WaitFor(t, 60*time.Second, "the node to answer whoami", func() bool {
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		me, err = op.WhoAmI(context.Background())
		return err == nil
	})
	if !me.Operator {
		t.Fatalf("whoami with the operator token from --operator-token-file: got %+v", me)
	}
	var org wire.Organization
	clustertest.WaitFor(t, 30*time.Second, "an organization to be created", func() bool {
		org, err = op.CreateOrganization(context.Background(), wire.CreateOrganizationRequest{Name: "flags"})
		return err == nil
	})
	if org.KeyQuota != 7 || org.HomeZone != "zone-a" {
		t.Errorf("organization created without limits: quota %d home zone %q, want 7 and zone-a (from the flags)", org.KeyQuota, org.HomeZone)
	}
}
