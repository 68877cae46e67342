package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// newHealthCommand builds `keyzone health`: it asks one node GET
// /v1/health, which needs no token. It exits 0 when the node is ready,
// degraded or not (it says degraded, with the reasons), and non-zero with
// the reasons when it is not ready or does not answer, so it serves as a
// container healthcheck in an image that holds nothing but the binary.
func newHealthCommand(g *cliGlobal) *cobra.Command {
	var (
		timeout time.Duration
		live    bool
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that a node is ready (exit 0, saying degraded if it is) or not (exit 1); no token needed",
		Long: `Ask a node GET /v1/health (no token needed).

A node is ready when its zone has a leader it hears from and it has applied
nearly all the leader has (or it leads). It is degraded when it is ready but
a voter of its zone is unreachable, or a remote zone has not acknowledged a
change of this zone for longer than the node's --replication-lag-threshold.

Exit 0 when ready, printing "ready", or "degraded:" with each reason; exit 1
with the reasons when the node is not ready or does not answer. With --live,
only check that the node's process answers (GET /v1/health/live), as a
liveness probe does. The address is --addr or $KEYZONE_ADDR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
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
			c, err := client.New(addr, "", g.clientOptions(client.WithTimeout(timeout))...)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cliContext(cmd), timeout)
			defer cancel()
			if live {
				h, err := c.Live(ctx)
				if err != nil {
					return fmt.Errorf("node %s does not answer: %w", addr, err)
				}
				return g.render(cmd, h, func(w io.Writer) { fmt.Fprintln(w, "live") })
			}
			h, err := c.Health(ctx)
			if err != nil {
				return fmt.Errorf("node %s does not answer: %w", addr, err)
			}
			if err := g.render(cmd, h, func(w io.Writer) { printHealth(w, h) }); err != nil {
				return err
			}
			if !h.Ready {
				reasons := h.Reasons
				if len(reasons) == 0 {
					reasons = []string{"no reason given"}
				}
				return fmt.Errorf("node %s is not ready: %s", addr, strings.Join(reasons, "; "))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the node's answer")
	cmd.Flags().BoolVar(&live, "live", false, "only check that the node's process answers (liveness)")
	return cmd
}

// printHealth prints one line per reason, led by the node's status, or
// "ready" alone.
func printHealth(w io.Writer, h wire.Health) {
	reasons := h.Reasons
	if len(reasons) == 0 && h.Reason != "" {
		reasons = []string{h.Reason}
	}
	status := "ready"
	switch {
	case !h.Live:
		status = "not live"
	case !h.Ready:
		status = "live, not ready"
	case h.Degraded:
		status = "degraded"
	}
	if len(reasons) == 0 {
		fmt.Fprintln(w, status)
		return
	}
	for _, r := range reasons {
		fmt.Fprintf(w, "%s: %s\n", status, r)
	}
}
