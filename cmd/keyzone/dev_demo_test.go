package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/test/clustertest"
)

// readEnvFile returns the KEY=value lines of an env file as a map.
func readEnvFile(t *testing.T, path string) (map[string]string, []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("env file line %q", sc.Text())
		}
		env[k] = v
		names = append(names, k)
	}
	return env, names
}

// TestDev_DemoOrganization runs `keyzone dev` in-process with two zones of
// one node: the env file names the demo organization's org-admin and
// crypto-user tokens and the operator token, each accepted by every
// zone, and every node writes its audit log.
func TestDev_DemoOrganization(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".dev", "env")
	stop := runDevInProcess(t, devFlags{zones: 2, nodes: 1, apiPort: 0, envFile: envFile, dataDir: filepath.Join(dir, "data"), logLevel: "error"})
	env, names := readEnvFile(t, envFile)
	want := []string{"KEYZONE_ADDR", "KEYZONE_TOKEN", "KEYZONE_OPERATOR_TOKEN", "KEYZONE_CRYPTO_TOKEN", "KEYZONE_AUDIT_DIR",
		"KEYZONE_ADDR_ZONE_A", "KEYZONE_ADDR_ZONE_B", "KEYZONE_ROOT_KEY_FILE", "KEYZONE_HOME_ZONE", "KEYZONE_JOIN_ZONE_A", "KEYZONE_JOIN_ZONE_B"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("env file names %q, want %q", names, want)
	}
	if env["KEYZONE_HOME_ZONE"] != "zone-a" {
		t.Errorf("KEYZONE_HOME_ZONE=%s, want zone-a", env["KEYZONE_HOME_ZONE"])
	}

	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	var demoOrg string
	for _, zone := range []string{"KEYZONE_ADDR_ZONE_A", "KEYZONE_ADDR_ZONE_B"} {
		for name, role := range map[string]string{"KEYZONE_TOKEN": "org-admin", "KEYZONE_CRYPTO_TOKEN": "crypto-user", "KEYZONE_OPERATOR_TOKEN": ""} {
			c, err := client.New(env[zone], env[name])
			if err != nil {
				t.Fatal(err)
			}
			me, err := c.WhoAmI(rctx)
			if err != nil {
				t.Fatalf("%s in %s: %v", name, zone, err)
			}
			if me.Role != role && !(role == "" && me.Operator) {
				t.Errorf("%s in %s: whoami %+v, want role %q", name, zone, me, role)
			}
			if role != "" {
				if demoOrg == "" {
					demoOrg = me.Organization
				}
				if me.Organization != demoOrg {
					t.Errorf("%s in %s: organization %s, want the demo's %s", name, zone, me.Organization, demoOrg)
				}
			}
		}
	}
	op, err := client.New(env["KEYZONE_ADDR"], env["KEYZONE_OPERATOR_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	if org, err := op.GetOrganization(rctx, devDemoOrg); err != nil || org.ID != demoOrg || org.HomeZone != "zone-a" {
		t.Errorf("organization %s: got %+v, %v; want id %s in zone-a", devDemoOrg, org, err, demoOrg)
	}
	for _, node := range []string{"a1", "b1"} {
		// A read's record is written within a few milliseconds of its
		// answer, in a batch.
		var b []byte
		clustertest.WaitFor(t, 10*time.Second, "a whoami in the audit log of "+node, func() bool {
			b, err = os.ReadFile(filepath.Join(env["KEYZONE_AUDIT_DIR"], node+".log"))
			return err == nil && bytes.Contains(b, []byte(`"operation":"whoami"`))
		})
	}

	if err := stop(); err != nil {
		t.Fatalf("dev: %v", err)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("env file left behind: %v", err)
	}
}

// runDevInProcess runs `keyzone dev` with f in this process, and returns
// once it has written its env file f.envFile. stop (called at the latest
// when the test ends) stops it and returns its error.
func runDevInProcess(t *testing.T, f devFlags) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDev(ctx, f) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("dev did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	clustertest.WaitFor(t, 90*time.Second, "dev to write its env file", func() bool {
		select {
		case err := <-done:
			t.Fatalf("dev stopped: %v", err)
		default:
		}
		_, err := os.Stat(f.envFile)
		return err == nil
	})
	return stop
}
