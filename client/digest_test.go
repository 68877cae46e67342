package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
)

func TestClient_Digest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	got, err := e.op.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := e.cluster.DigestResult
	if got.Zone != "zone-a" || got.Node != "node-1" || got.ChangeSeq != want.ChangeSeq || len(got.Keys) != 2 {
		t.Fatalf("report: got %+v", got)
	}
	if k := got.Keys[1]; k.KeyID != want.Keys[1].KeyID || k.PrimaryZone != "zone-b" || !slices.Equal(k.ReplicaZones, []string{"zone-a"}) ||
		k.Digest != want.Keys[1].Digest || k.ReplicaSeq != 7 {
		t.Errorf("second key: got %+v, want %+v", k, want.Keys[1])
	}

	e.cluster.DigestErr = fmt.Errorf("read index: %w", cluster.ErrNoLeader)
	_, err = e.op.Digest(ctx)
	if ce := apiErr(t, err, 503, wire.CodeUnavailable); ce.RetryAfter == 0 {
		t.Error("no leader: no RetryAfter")
	}
	noToken, err := client.New(e.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = noToken.Digest(ctx)
	apiErr(t, err, 401, wire.CodeUnauthorized)
}
