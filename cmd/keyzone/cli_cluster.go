package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

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
	cmd.AddCommand(newPeersCommand(g), newRemovePeerCommand(g), newTransferLeadershipCommand(g))
	cmd.AddCommand(newVerifyCommand(g))
	cmd.AddCommand(newSnapshotCommand(g))
	return cmd
}

func newPeersCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List the zone's voters with their state, last contact and applied index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			ps, err := c.Peers(cliContext(cmd))
			if err != nil {
				return err
			}
			return g.render(cmd, ps, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tRAFT\tAPI\tSTATE\tLAST CONTACT\tAPPLIED")
				for _, p := range ps.Peers {
					api, contact, applied := orDash(p.APIAddress), orDash(p.LastContact), "-"
					if p.AppliedIndex != nil {
						applied = strconv.FormatUint(*p.AppliedIndex, 10)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.RaftAddress, api, p.State, contact, applied)
				}
			})
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newRemovePeerCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-peer NODE_ID",
		Short: "Remove a voter from the zone (stop it first; it rejoins only under a new id with a wiped data dir)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			if err := c.RemovePeer(cliContext(cmd), args[0]); err != nil {
				return err
			}
			res := struct {
				Removed string `json:"removed"`
			}{args[0]}
			return g.render(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "Removed %s from the zone.\n", res.Removed)
			})
		},
	}
}

func newTransferLeadershipCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "transfer-leadership [NODE_ID]",
		Short: "Hand the zone's leadership to NODE_ID, or to the most up-to-date voter",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			var target string
			if len(args) == 1 {
				target = args[0]
			}
			if err := c.TransferLeadership(cliContext(cmd), target); err != nil {
				return err
			}
			res := struct {
				Transferred bool   `json:"transferred"`
				NodeID      string `json:"node_id,omitempty"`
			}{true, target}
			return g.render(cmd, res, func(w io.Writer) {
				if target == "" {
					fmt.Fprintln(w, "Leadership transferred.")
					return
				}
				fmt.Fprintf(w, "Leadership transferred to %s.\n", target)
			})
		},
	}
}

func newZoneCommand(g *cliGlobal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zone",
		Short: "Inspect the deployment's zones and replication between them",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show every zone: its live nodes and how far replication with it has come",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			zs, err := c.Zones(cliContext(cmd))
			if err != nil {
				return err
			}
			return g.render(cmd, zs, func(w io.Writer) {
				fmt.Fprintln(w, "ZONE\tLOCAL\tNODES\tCHANGE SEQ\tAPPLIED\tACKED\tLAG\tLAG AGE")
				for _, z := range zs.Zones {
					// The change-log head belongs to the local zone; the
					// replication progress to the others.
					local, seq, applied, acked, lag, age := "", "-", "-", "-", "-", "-"
					if z.Local {
						local, seq = "*", strconv.FormatUint(z.ChangeSeq, 10)
					} else {
						applied = strconv.FormatUint(z.Applied, 10)
						acked = strconv.FormatUint(z.Acked, 10)
						lag = strconv.FormatUint(z.LagEntries, 10)
						age = (time.Duration(z.LagSeconds * float64(time.Second))).Round(time.Millisecond).String()
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", z.Name, local, len(z.Nodes), seq, applied, acked, lag, age)
				}
			})
		},
	})
	return cmd
}
