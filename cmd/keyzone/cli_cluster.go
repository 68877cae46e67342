package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newClusterCommand(g *cliGlobal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the zone's cluster",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the zone's nodes, leader and applied index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cliContext(cmd))
			if err != nil {
				return err
			}
			return g.render(cmd, st, func(w io.Writer) {
				fmt.Fprintf(w, "Zone:\t%s\n", st.Zone)
				fmt.Fprintf(w, "Answered by:\t%s\n", st.NodeID)
				fmt.Fprintf(w, "Leader:\t%s\n", st.Leader)
				fmt.Fprintf(w, "Term:\t%d\n", st.Term)
				fmt.Fprintf(w, "Applied index:\t%d\n", st.AppliedIndex)
				fmt.Fprintf(w, "Commit index:\t%d\n", st.CommitIndex)
				fmt.Fprintln(w)
				fmt.Fprintln(w, "ID\tAPI\tRAFT\tSTATE\tLEADER")
				for _, n := range st.Nodes {
					leader := ""
					if n.ID == st.Leader {
						leader = "*"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.ID, n.APIAddress, n.RaftAddress, n.State, leader)
				}
			})
		},
	})
	return cmd
}
