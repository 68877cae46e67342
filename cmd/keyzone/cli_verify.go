package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/client/verify"
)

func newVerifyCommand(g *cliGlobal) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that every zone holds the same state of each multi-zone key as its primary zone",
		Long: `Verify asks the node for the deployment's zones, fetches the digests of the
multi-zone keys from one reachable node of every zone, and compares each
key's primary zone with each of its replica zones. It prints one line per
problem and a summary, and exits non-zero when a key differs or a zone
can't be reached.

Replicas lag their primary by a pull, milliseconds while the zones are
connected: --wait checks again until the zones agree or the time is up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait < 0 {
				return fmt.Errorf("--wait %s: must not be negative", wait)
			}
			addr, token, err := g.endpoint()
			if err != nil {
				return err
			}
			ch := &verify.Checker{
				Addr: addr,
				Dial: func(a string) (*client.Client, error) { return client.New(a, token, g.clientOptions()...) },
			}
			r, err := ch.Wait(cliContext(cmd), wait)
			if err != nil {
				return err
			}
			if err := g.render(cmd, r, func(w io.Writer) { printVerify(w, r) }); err != nil {
				return err
			}
			if !r.OK() {
				return errors.New("verify failed: " + r.Summary())
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "check again until the zones agree or this long has passed (e.g. 30s)")
	return cmd
}

// printVerify prints the unreachable zones, one line per difference, and
// the summary.
func printVerify(w io.Writer, r verify.Report) {
	for _, z := range r.Zones {
		if !z.Reachable {
			fmt.Fprintf(w, "zone %s: unreachable: %s\n", z.Name, z.Error)
		}
	}
	for _, d := range r.Differences {
		fmt.Fprintln(w, d.String())
	}
	fmt.Fprintln(w, r.Summary())
}
