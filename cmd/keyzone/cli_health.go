package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/client"
)

// newHealthCommand builds `keyzone health`: it asks one node GET
// /v1/health, which needs no token, and succeeds only when the node
// answers and is ready (its zone has a leader it hears from). It exits
// non-zero with the reason otherwise, so it serves as a container
// healthcheck in an image that holds nothing but the binary.
func newHealthCommand(g *cliGlobal) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that a node answers and is ready (no token needed; exit 0 when ready)",
		Long: `Ask a node GET /v1/health (no token needed) and exit 0 when it answers
and is ready: its zone has a leader and the node hears from it. Otherwise
exit 1 with the reason on stderr. The address is --addr or $KEYZONE_ADDR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("--output %q: want table or json", g.output)
			}
			addr := g.addr
			if addr == "" {
				addr = g.getenv("KEYZONE_ADDR")
			}
			if addr == "" {
				return errors.New("no node address: set KEYZONE_ADDR or pass --addr (e.g. http://127.0.0.1:8200)")
			}
			if timeout <= 0 {
				return fmt.Errorf("--timeout %v: want a positive duration", timeout)
			}
			// The token is not needed and not sent: health is public.
			c, err := client.New(addr, "", client.WithTimeout(timeout))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cliContext(cmd), timeout)
			defer cancel()
			h, err := c.Health(ctx)
			if err != nil {
				return fmt.Errorf("node %s does not answer: %w", addr, err)
			}
			if err := g.render(cmd, h, func(w io.Writer) {
				switch {
				case h.Ready:
					fmt.Fprintln(w, "ready")
				case h.Live:
					fmt.Fprintf(w, "live, not ready: %s\n", h.Reason)
				default:
					fmt.Fprintf(w, "not live: %s\n", h.Reason)
				}
			}); err != nil {
				return err
			}
			if !h.Ready {
				reason := h.Reason
				if reason == "" {
					reason = "no reason given"
				}
				return fmt.Errorf("node %s is not ready: %s", addr, reason)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the node's answer")
	return cmd
}
