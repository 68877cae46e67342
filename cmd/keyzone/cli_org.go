package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// tokenRoles are the roles a token can carry (see api/wire/tenancy.go).
var tokenRoles = []string{"org-admin", "key-admin", "crypto-user", "auditor"}

func newOrgCommand(g *cliGlobal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "org",
		Short: "Manage organizations (the operator's token: $KEYZONE_OPERATOR_TOKEN)",
		Long: `Manage organizations, the tenants of a deployment: every key and token
belongs to one. Organizations are the cluster operator's: these commands
send $KEYZONE_OPERATOR_TOKEN (else $KEYZONE_TOKEN) unless --token is given.
They are written in the deployment's home zone; a node of another zone
forwards the change there.`,
	}
	cmd.AddCommand(newOrgCreateCommand(g), newOrgListCommand(g), newOrgGetCommand(g), newOrgUpdateCommand(g))
	return cmd
}

// orgWithTokens is what `org create --with-tokens -o json` prints.
type orgWithTokens struct {
	Organization wire.Organization   `json:"organization"`
	Tokens       []wire.CreatedToken `json:"tokens"`
}

func newOrgCreateCommand(g *cliGlobal) *cobra.Command {
	var (
		req        wire.CreateOrganizationRequest
		withTokens bool
		existOK    bool
		quiet      bool
		wait       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an organization and its default key",
		Long: `Create an organization and its default key (replicated to every zone).
Zero or absent limits take the server's defaults (--org-key-quota,
--org-rate-limit and --org-rate-burst of keyzone server).

--with-tokens then creates an org-admin and a crypto-user token of the new
organization and prints their secrets, as KEYZONE_TOKEN and
KEYZONE_CRYPTO_TOKEN lines; they are shown only now. --wait retries while
the deployment is not up yet (no answer, 502, 503, 504), as a one-shot
container started beside the nodes needs; --exist-ok takes an organization
of that name that already exists (with --with-tokens, new tokens are
created for it).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if quiet && (withTokens || g.output == "json") {
				return errors.New("--quiet prints the id alone: give neither -o json nor --with-tokens with it")
			}
			if req.KeyQuota < 0 || req.RateBurst < 0 {
				return errors.New("--key-quota and --rate-burst must not be negative")
			}
			if wait < 0 {
				return fmt.Errorf("--wait %s: must not be negative", wait)
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			ctx := cliContext(cmd)
			req.Name = args[0]
			var org wire.Organization
			err = retryUnavailable(ctx, wait, func() error {
				org, err = c.CreateOrganization(ctx, req)
				if existOK && isStatus(err, http.StatusConflict) {
					org, err = c.GetOrganization(ctx, req.Name)
				}
				return err
			})
			if err != nil {
				return err
			}
			if quiet {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), org.ID)
				return err
			}
			if !withTokens {
				return g.renderOrg(cmd, org)
			}
			res := orgWithTokens{Organization: org}
			for _, role := range []string{"org-admin", "crypto-user"} {
				var tok wire.CreatedToken
				err := retryUnavailable(ctx, wait, func() error {
					tok, err = c.CreateToken(ctx, org.ID, wire.CreateTokenRequest{Role: role, Description: org.Name + " " + role + " (org create --with-tokens)"})
					return err
				})
				if err != nil {
					return fmt.Errorf("organization %s created, but not its %s token: %w", org.Name, role, err)
				}
				res.Tokens = append(res.Tokens, tok)
			}
			return g.render(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "Organization %s (id %s, default key %s, home zone %s).\n", org.Name, org.ID, org.DefaultKeyID, org.HomeZone)
				fmt.Fprintln(w, "Its tokens, shown only now:")
				fmt.Fprintln(w)
				for i, name := range []string{envToken, "KEYZONE_CRYPTO_TOKEN"} {
					t := res.Tokens[i]
					fmt.Fprintf(w, "  export %s=%s\t# %s of %s, token id %s\n", name, t.Secret, t.Role, org.Name, t.ID)
				}
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&req.KeyQuota, "key-quota", 0, "keys the organization may hold per zone (default: the server's --org-key-quota)")
	f.Float64Var(&req.RateLimit, "rate-limit", 0, "requests/s per node (default: the server's --org-rate-limit; negative: no limit)")
	f.IntVar(&req.RateBurst, "rate-burst", 0, "burst of the rate limit (default: the server's --org-rate-burst)")
	f.BoolVar(&withTokens, "with-tokens", false, "also create an org-admin and a crypto-user token and print their secrets")
	f.BoolVar(&existOK, "exist-ok", false, "take an existing organization of that name instead of failing")
	f.DurationVar(&wait, "wait", 0, "retry this long while the deployment does not answer or has no leader (e.g. 3m)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the new organization's id (for scripts)")
	return cmd
}

// retryUnavailable calls f until it succeeds, fails for another reason
// than the deployment not being up (no answer, 502, 503, 504), or wait
// has passed. wait 0 calls f once.
func retryUnavailable(ctx context.Context, wait time.Duration, f func() error) error {
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil || wait == 0 || !unavailable(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// unavailable reports whether err says the deployment can't answer yet:
// no connection, a timeout, or 502, 503, 504.
func unavailable(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		return !errors.Is(err, context.Canceled)
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// isStatus reports whether err is an API answer of that status.
func isStatus(err error, status int) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.StatusCode == status
}

func newOrgListCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List organizations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			list, err := c.ListOrganizations(cliContext(cmd))
			if err != nil {
				return err
			}
			return g.render(cmd, list, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tHOME ZONE\tKEY QUOTA\tRATE LIMIT\tDEFAULT KEY\tCREATED")
				for _, o := range list.Organizations {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", o.ID, o.Name, orDash(o.HomeZone), o.KeyQuota,
						rateLimit(o.RateLimit, o.RateBurst), orDash(o.DefaultKeyID), cliTime(o.CreatedAt))
				}
			})
		},
	}
}

func newOrgGetCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "get ORG",
		Short: "Show an organization (ORG is its id or its name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			org, err := c.GetOrganization(cliContext(cmd), args[0])
			if err != nil {
				return err
			}
			return g.renderOrg(cmd, org)
		},
	}
}

func newOrgUpdateCommand(g *cliGlobal) *cobra.Command {
	var (
		quota, burst int
		limit        float64
	)
	cmd := &cobra.Command{
		Use:   "update ORG",
		Short: "Change an organization's key quota or rate limit",
		Long: `Change an organization's key quota or rate limit; the flags not given are
left alone. --rate-limit 0 goes back to the server's default, a negative
one turns the limit off.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var req wire.UpdateOrganizationRequest
			if f.Changed("key-quota") {
				if quota < 0 {
					return errors.New("--key-quota must not be negative")
				}
				req.KeyQuota = &quota
			}
			if f.Changed("rate-limit") {
				req.RateLimit = &limit
			}
			if f.Changed("rate-burst") {
				if burst < 0 {
					return errors.New("--rate-burst must not be negative")
				}
				req.RateBurst = &burst
			}
			if req == (wire.UpdateOrganizationRequest{}) {
				return errors.New("nothing to update: pass --key-quota, --rate-limit or --rate-burst")
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			org, err := c.UpdateOrganization(cliContext(cmd), args[0], req)
			if err != nil {
				return err
			}
			return g.renderOrg(cmd, org)
		},
	}
	f := cmd.Flags()
	f.IntVar(&quota, "key-quota", 0, "keys the organization may hold per zone")
	f.Float64Var(&limit, "rate-limit", 0, "requests/s per node (0: the server's default; negative: no limit)")
	f.IntVar(&burst, "rate-burst", 0, "burst of the rate limit (0: the server's default)")
	return cmd
}

// rateLimit describes an organization's rate limit.
func rateLimit(limit float64, burst int) string {
	switch {
	case limit < 0:
		return "none"
	case limit == 0:
		return "server default"
	case burst > 0:
		return fmt.Sprintf("%s/s (burst %d)", strconv.FormatFloat(limit, 'g', -1, 64), burst)
	}
	return strconv.FormatFloat(limit, 'g', -1, 64) + "/s"
}

// renderOrg prints one organization as JSON or as a two-column table.
func (g *cliGlobal) renderOrg(cmd *cobra.Command, o wire.Organization) error {
	return g.render(cmd, o, func(w io.Writer) {
		burst := "server default"
		if o.RateBurst > 0 {
			burst = strconv.Itoa(o.RateBurst)
		}
		for _, r := range [][2]string{
			{"ID", o.ID},
			{"Name", o.Name},
			{"Default key", o.DefaultKeyID},
			{"Home zone", o.HomeZone},
			{"Key quota", strconv.Itoa(o.KeyQuota)},
			{"Rate limit", rateLimit(o.RateLimit, 0)},
			{"Rate burst", burst},
			{"Created", cliTime(o.CreatedAt)},
			{"Updated", cliTime(o.UpdatedAt)},
		} {
			fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
		}
	})
}

func newTokenCommand(g *cliGlobal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage an organization's API tokens",
		Long: `Manage an organization's API tokens. An org-admin manages its own
organization's tokens (an auditor may list them); the operator any
organization's. These commands send $KEYZONE_TOKEN, else
$KEYZONE_OPERATOR_TOKEN, unless --token is given. --org defaults to the
organization of the token sent (keyzone whoami).

Roles: org-admin (keys, crypto and the organization's tokens), key-admin
(key lifecycle and reads, no crypto), crypto-user (encrypt, decrypt,
generate-data-key, re-encrypt; --key-id and --tag restrict it to some keys;
no key reads), auditor (key and token reads; no crypto, no change).`,
	}
	cmd.AddCommand(newTokenCreateCommand(g), newTokenListCommand(g), newTokenRevokeCommand(g))
	return cmd
}

// orgOf returns org, or when it is "" the organization of the client's
// token.
func orgOf(ctx context.Context, c *client.Client, org string) (string, error) {
	if org != "" {
		return org, nil
	}
	me, err := c.WhoAmI(ctx)
	if err != nil {
		return "", fmt.Errorf("find the token's organization (or pass --org): %w", err)
	}
	if me.Organization == "" {
		return "", errors.New("the operator's token belongs to no organization: pass --org")
	}
	return me.Organization, nil
}

func newTokenCreateCommand(g *cliGlobal) *cobra.Command {
	var (
		org     string
		req     wire.CreateTokenRequest
		expires time.Duration
		quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create a token and print its secret (shown only now)",
		Long: `Create a token of an organization and print it with its secret, which is
shown only now: Keyzone keeps only a hash of it. -q prints the secret alone
(TOKEN=$(keyzone token create --role crypto-user -q)); -o json prints the
token and its secret.

--key-id and --tag restrict a crypto-user to the keys named (the key id
"default" names the organization's default key) or carrying a tag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(tokenRoles, req.Role) {
				return fmt.Errorf("--role %q: want one of %s", req.Role, strings.Join(tokenRoles, ", "))
			}
			if quiet && g.output == "json" {
				return errors.New("--quiet prints the secret alone; -o json prints the token: give one")
			}
			if cmd.Flags().Changed("expires-in") {
				if expires <= 0 {
					return fmt.Errorf("--expires-in %s: want a positive duration", expires)
				}
				req.ExpiresIn = expires.String()
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			ctx := cliContext(cmd)
			if org, err = orgOf(ctx, c, org); err != nil {
				return err
			}
			tok, err := c.CreateToken(ctx, org, req)
			if err != nil {
				return err
			}
			if quiet {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), tok.Secret)
				return err
			}
			return g.render(cmd, tok, func(w io.Writer) {
				fmt.Fprintf(w, "Secret:\t%s\n", tok.Secret)
				printToken(w, tok.Token)
				fmt.Fprintln(w)
				fmt.Fprintln(w, "The secret is shown only now: Keyzone keeps only its hash.")
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&org, "org", "", "organization id or name (default: the token's own, as keyzone whoami says)")
	f.StringVar(&req.Role, "role", "", "org-admin, key-admin, crypto-user or auditor (required)")
	f.StringArrayVar(&req.KeyIDs, "key-id", nil, `crypto-user: only this key ("default": the organization's default key; repeatable)`)
	f.StringArrayVar(&req.Tags, "tag", nil, "crypto-user: only keys with this tag (repeatable)")
	f.DurationVar(&expires, "expires-in", 0, "the token expires after this long (e.g. 720h; default: never)")
	f.StringVar(&req.Description, "description", "", "free-form description (who or what uses it)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the secret (for scripts)")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(tokenRoles, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newTokenListCommand(g *cliGlobal) *cobra.Command {
	var org string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List an organization's tokens, revoked ones too (never a secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			ctx := cliContext(cmd)
			if org, err = orgOf(ctx, c, org); err != nil {
				return err
			}
			list, err := c.ListTokens(ctx, org)
			if err != nil {
				return err
			}
			now := time.Now()
			return g.render(cmd, list, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tROLE\tSTATE\tKEYS\tCREATED\tEXPIRES\tDESCRIPTION")
				for _, t := range list.Tokens {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, tokenState(t, now), tokenScope(t),
						cliTime(t.CreatedAt), expiry(t.ExpiresAt), orDash(t.Description))
				}
			})
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "organization id or name (default: the token's own)")
	return cmd
}

func newTokenRevokeCommand(g *cliGlobal) *cobra.Command {
	var org string
	cmd := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke a token: every zone refuses it once the revocation reaches it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			ctx := cliContext(cmd)
			if org, err = orgOf(ctx, c, org); err != nil {
				return err
			}
			tok, err := c.RevokeToken(ctx, org, args[0])
			if err != nil {
				return err
			}
			return g.render(cmd, tok, func(w io.Writer) {
				fmt.Fprintf(w, "Revoked token %s (%s of %s).\n", tok.ID, tok.Role, tok.Organization)
			})
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "organization id or name (default: the token's own)")
	return cmd
}

func newWhoAmICommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the token is: the operator, or an organization's token and its role",
		Long: `Show who the token sent is: the cluster operator, or a token of an
organization with its role. It sends $KEYZONE_TOKEN, else
$KEYZONE_OPERATOR_TOKEN, unless --token is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			me, err := c.WhoAmI(cliContext(cmd))
			if err != nil {
				return err
			}
			return g.render(cmd, me, func(w io.Writer) {
				if me.Operator {
					fmt.Fprintln(w, "Operator:\ttrue (manages organizations and the cluster; no organization's keys)")
					return
				}
				fmt.Fprintf(w, "Organization:\t%s\n", me.Organization)
				fmt.Fprintf(w, "Token:\t%s\n", me.TokenID)
				fmt.Fprintf(w, "Role:\t%s\n", me.Role)
			})
		},
	}
}

// printToken prints a token's metadata as two columns.
func printToken(w io.Writer, t wire.Token) {
	rows := [][2]string{
		{"ID", t.ID},
		{"Organization", t.Organization},
		{"Role", t.Role},
		{"Key ids", strings.Join(t.KeyIDs, ", ")},
		{"Tags", strings.Join(t.Tags, ", ")},
		{"Description", t.Description},
		{"Created", cliTime(t.CreatedAt)},
		{"Expires", expiry(t.ExpiresAt)},
	}
	if t.RevokedAt != nil {
		rows = append(rows, [2]string{"Revoked", cliTime(*t.RevokedAt)})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
}

func expiry(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return cliTime(*t)
}

// tokenState is revoked, expired or active.
func tokenState(t wire.Token, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return "expired"
	}
	return "active"
}

// tokenScope says which keys a token is restricted to.
func tokenScope(t wire.Token) string {
	var parts []string
	if len(t.KeyIDs) > 0 {
		parts = append(parts, "ids "+strings.Join(t.KeyIDs, ","))
	}
	if len(t.Tags) > 0 {
		parts = append(parts, "tags "+strings.Join(t.Tags, ","))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, "; ")
}
