package main

import (
	"github.com/spf13/cobra"
)

func newKeyUpdatePrimaryCommand(g *cliGlobal) *cobra.Command {
	var (
		ifMatch uint64
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "update-primary ID ZONE",
		Short: "Make one of a key's replica zones its primary zone",
		Long: `Make ZONE, one of the key's replica zones, the key's primary zone: lifecycle
changes are then made there, and the old primary zone keeps a replica.

Sent to any zone, the change is carried out by the current primary zone, which
refuses when ZONE has not applied the key's last change yet. --force goes ahead
anyway (that change is lost). Sent with --force to a node of ZONE while the
primary zone is unreachable, ZONE takes the key over alone; when the old
primary zone comes back it becomes a replica and loses what it changed that
ZONE never received.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			k, err := c.UpdatePrimary(cliContext(cmd), args[0], args[1], force, ifMatchOption(ifMatch)...)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "fail unless the key is still at this revision")
	cmd.Flags().BoolVar(&force, "force", false, "hand over even if ZONE is behind, or take over without the primary zone")
	return cmd
}
