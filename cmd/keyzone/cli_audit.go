package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// auditFilter selects audit events; empty fields match everything.
type auditFilter struct {
	key, org, op, token string
	// status is an exact status, or with statusClass its hundreds (4 for
	// 4xx); 0 matches every status.
	status      int
	statusClass bool
	since       time.Time
}

// auditRecord is the part of an audit event (one JSON line of
// `keyzone server --audit-log`) that `keyzone audit` shows and filters on.
type auditRecord struct {
	Time         time.Time       `json:"time"`
	Organization string          `json:"organization"`
	TokenID      string          `json:"token_id"`
	Role         string          `json:"role"`
	Operation    string          `json:"operation"`
	Method       string          `json:"method"`
	Route        string          `json:"route"`
	KeyID        string          `json:"key_id"`
	KeyVersion   json.RawMessage `json:"key_version"`
	Status       int             `json:"status"`
	Outcome      string          `json:"outcome"`
	// Seen records which fields the line holds, to tell an audit event
	// from another JSON log line.
	seen map[string]json.RawMessage
}

func (f auditFilter) match(r auditRecord) bool {
	switch {
	case f.key != "" && r.KeyID != f.key,
		f.org != "" && r.Organization != f.org,
		f.op != "" && !strings.EqualFold(r.Operation, f.op),
		f.token != "" && r.TokenID != f.token,
		!f.since.IsZero() && r.Time.Before(f.since):
		return false
	case f.status != 0 && f.statusClass:
		return r.Status/100 == f.status
	case f.status != 0:
		return r.Status == f.status
	}
	return true
}

// parseAuditLine returns the audit event a log line holds, and the JSON
// object itself. A line may carry a prefix before its JSON object (as
// `docker-compose logs` adds); a line that holds no JSON object with a
// route and a status (plain log lines, other JSON log lines) is no event.
func parseAuditLine(line []byte) (auditRecord, []byte, bool) {
	i := bytes.IndexByte(line, '{')
	if i < 0 {
		return auditRecord{}, nil, false
	}
	obj := bytes.TrimSpace(line[i:])
	var r auditRecord
	if err := json.Unmarshal(obj, &r.seen); err != nil {
		return auditRecord{}, nil, false
	}
	if _, ok := r.seen["route"]; !ok {
		return auditRecord{}, nil, false
	}
	if _, ok := r.seen["status"]; !ok {
		return auditRecord{}, nil, false
	}
	if err := json.Unmarshal(obj, &r); err != nil {
		return auditRecord{}, nil, false
	}
	return r, obj, true
}

// parseSince reads --since: an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (15m)", s)
	}
	return now.Add(-d), nil
}

// parseStatus reads --status: an HTTP status (403) or a class (4xx).
func parseStatus(s string) (int, bool, error) {
	class := len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx")
	n, err := strconv.Atoi(strings.TrimSuffix(strings.ToLower(s), "xx"))
	switch {
	case err != nil:
	case class && n >= 1 && n <= 5:
		return n, true, nil
	case !class && n >= 100 && n <= 599:
		return n, false, nil
	}
	return 0, false, fmt.Errorf("--status %q: want an HTTP status (403) or a class (4xx)", s)
}

func newAuditCommand(g *cliGlobal) *cobra.Command {
	var (
		f             auditFilter
		since, status string
	)
	cmd := &cobra.Command{
		Use:   "audit [FILE|-]",
		Short: "Read an audit log: filter its events by key, organization, operation, token, status or time",
		Long: `Read an audit log (keyzone server --audit-log FILE: one JSON object per
request) from FILE, or stdin when FILE is "-" or absent, and print the
events that match every filter given, as a table (time, organization, token,
role, operation, key, key version, status, outcome), or with -o json the
matching lines themselves, unchanged (JSON Lines, for jq).

Lines that hold no audit event are skipped, so a node's whole log can be
read, also through docker-compose logs (a prefix before the JSON object is
ignored). No node and no token are needed.`,
		Example: `  keyzone audit /var/log/keyzone/audit.log --org acme --op encrypt --since 1h
  keyzone audit audit.log --status 4xx -o json | jq .
  docker-compose logs --no-color a1 | keyzone audit --key "$KEY"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			var err error
			if since != "" {
				if f.since, err = parseSince(since, time.Now()); err != nil {
					return err
				}
			}
			if status != "" {
				if f.status, f.statusClass, err = parseStatus(status); err != nil {
					return err
				}
			}
			var in io.Reader = cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer file.Close()
				in = file
			}
			return g.printAudit(cmd, in, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.key, "key", "", "only events of this key id")
	fl.StringVar(&f.org, "org", "", "only events of this organization (as the log names it: its id)")
	fl.StringVar(&f.op, "op", "", "only events of this operation (e.g. encrypt, create-key)")
	fl.StringVar(&f.token, "token", "", "only events of this token id (never a secret: the log holds none)")
	fl.StringVar(&status, "status", "", "only events of this HTTP status (403) or class (4xx)")
	fl.StringVar(&since, "since", "", "only events from this time on: RFC 3339, or a duration back from now (15m)")
	return cmd
}

// printAudit streams the matching events of in to the command's output.
func (g *cliGlobal) printAudit(cmd *cobra.Command, in io.Reader, f auditFilter) error {
	out := cmd.OutOrStdout()
	var tw *tabwriter.Writer
	if g.output == "table" {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tORG\tTOKEN\tROLE\tOPERATION\tKEY\tVERSION\tSTATUS\tOUTCOME")
	}
	br := bufio.NewReaderSize(in, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if r, obj, ok := parseAuditLine(line); ok && f.match(r) {
				if tw == nil {
					if _, werr := fmt.Fprintf(out, "%s\n", obj); werr != nil {
						return werr
					}
				} else {
					op := r.Operation
					if op == "" {
						op = r.Method + " " + r.Route
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", auditTime(r.Time), orDash(r.Organization), orDash(r.TokenID),
						orDash(r.Role), op, orDash(r.KeyID), auditVersion(r.KeyVersion), r.Status, orDash(r.Outcome))
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read audit log: %w", err)
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

func auditTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// auditVersion shows a key_version however it is written (number or
// string), "-" when absent or zero.
func auditVersion(raw json.RawMessage) string {
	v := strings.Trim(string(raw), `"`)
	if v == "" || v == "0" || v == "null" {
		return "-"
	}
	return v
}
