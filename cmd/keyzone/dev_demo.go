package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// devDemoOrg is the organization `keyzone dev` creates.
const devDemoOrg = "demo"

// devDemoWait bounds the creation of the demo organization and its tokens,
// and then the wait until every node accepts them.
const devDemoWait = 60 * time.Second

// devTenant is the demo organization and its two tokens.
type devTenant struct {
	org           wire.Organization
	admin, crypto wire.CreatedToken
}

// devDemo creates the demo organization (or takes it, when a kept
// --data-dir already holds it) through the home zone's first node, with
// new org-admin and crypto-user tokens, and waits until both tokens
// authenticate on every node of every zone: they reach the other zones
// through replication. opts are the clients' options (the CA of --tls).
func devDemo(ctx context.Context, zones []*devZone, operator string, opts ...client.Option) (devTenant, error) {
	ctx, cancel := context.WithTimeout(ctx, devDemoWait)
	defer cancel()
	var d devTenant
	c, err := client.New(zones[0].servers[0].APIAddress(), operator, opts...)
	if err != nil {
		return d, err
	}
	err = devRetry(ctx, func() error {
		var err error
		d.org, err = c.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: devDemoOrg})
		if isStatus(err, http.StatusConflict) {
			d.org, err = c.GetOrganization(ctx, devDemoOrg)
		}
		return err
	})
	if err != nil {
		return d, fmt.Errorf("create the organization %s: %w", devDemoOrg, err)
	}
	for _, t := range []struct {
		role string
		out  *wire.CreatedToken
	}{{"org-admin", &d.admin}, {"crypto-user", &d.crypto}} {
		err := devRetry(ctx, func() error {
			var err error
			*t.out, err = c.CreateToken(ctx, d.org.ID, wire.CreateTokenRequest{Role: t.role, Description: "keyzone dev"})
			return err
		})
		if err != nil {
			return d, fmt.Errorf("create a %s token of %s: %w", t.role, devDemoOrg, err)
		}
	}
	for _, z := range zones {
		for _, s := range z.servers {
			for _, tok := range []wire.CreatedToken{d.admin, d.crypto} {
				if err := devWaitToken(ctx, s.APIAddress(), tok, opts...); err != nil {
					return d, fmt.Errorf("the %s token of %s is not accepted by node %s of %s: %w", tok.Role, devDemoOrg, s.Node().ID(), z.name, err)
				}
			}
		}
	}
	return d, nil
}

// devRetry calls f until it succeeds, fails for another reason than the
// zone being unavailable, or ctx ends.
func devRetry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !unavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// devWaitToken polls GET /v1/whoami on the node at addr with tok until
// the node names tok's role, or ctx ends.
func devWaitToken(ctx context.Context, addr string, tok wire.CreatedToken, opts ...client.Option) error {
	c, err := client.New(addr, tok.Secret, append([]client.Option{client.WithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		return err
	}
	for {
		me, err := c.WhoAmI(ctx)
		if err == nil && me.Role == tok.Role && me.TokenID == tok.ID {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("whoami answered %+v", me)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not within %s: %w", devDemoWait, err)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
