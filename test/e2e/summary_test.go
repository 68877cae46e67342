//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// summaryFigures are the outcomes of the checks that follow the faults.
type summaryFigures struct {
	repaired, lostRotations int
	verify                  string
	verifyErr               error
	convergence             time.Duration
	missing, failedDecrypts int
	bad5xx, unforced        int
	verdict                 lifecycleVerdict
	minRate                 float64
	total                   time.Duration
	doomed                  *doomed
	purgeFailures           int
	scenario                time.Duration // the leader-kill scenario run before the workload
}

// summary is the report printed at the end of TestNemesis.
func summary(w *workload, faults []*fault, s summaryFigures) string {
	var b strings.Builder
	b.WriteString("\n=== nemesis summary ===\n")
	fmt.Fprintf(&b, "leader-kill scenario, before the workload: passed in %v\n", s.scenario.Round(time.Millisecond))

	w.mu.Lock()
	attempted, acked := len(w.ops), 0
	failed := map[string]int{}
	for _, o := range w.ops {
		if o.ok() {
			acked++
		} else {
			failed[o.kind]++
		}
	}
	keys, sealed := len(w.keys), len(w.sealed)
	w.mu.Unlock()
	fmt.Fprintf(&b, "operations: %d attempted, %d acknowledged (%.1f%%), %d failed\n",
		attempted, acked, pct(acked, attempted), attempted-acked)
	var kinds []string
	for k := range failed {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, failed[k]))
	}
	fmt.Fprintf(&b, "failed by kind: %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(&b, "by kind and result:\n%s", w.table())

	// Success before, during and after each fault.
	windows := []window{{"before the first fault", w.started, faults[0].injected}}
	for _, f := range faults {
		windows = append(windows,
			window{f.name + ": held", f.injected, f.healed},
			window{f.name + ": recovering", f.healed, f.recovered},
			window{f.name + ": after", f.recovered, f.next})
	}
	fmt.Fprintf(&b, "\n%-82s %8s %7s %7s %8s %8s\n", "window", "length", "ops", "ok", "ok ops/s", "success")
	var before float64
	for i, win := range windows {
		okN, all, rate := w.rate(win)
		if i == 0 {
			before = rate
		}
		fmt.Fprintf(&b, "%-82s %8s %7d %7d %8.1f %7.1f%%\n", win.name, win.end.Sub(win.start).Round(100*time.Millisecond),
			all, okN, rate, pct(okN, all))
	}

	fmt.Fprintf(&b, "\n%-70s %8s %9s %9s %12s\n", "fault injected", "at", "held", "recovery", "convergence")
	for _, f := range faults {
		conv := f.converged.Round(time.Millisecond).String()
		if f.convErr != nil {
			conv = "none"
		}
		fmt.Fprintf(&b, "%-70s %8s %9s %9s %12s\n", f.name, "+"+f.injected.Sub(w.started).Round(time.Second).String(),
			f.healed.Sub(f.injected).Round(time.Millisecond), f.recovered.Sub(f.healed).Round(time.Millisecond), conv)
	}
	b.WriteString("(recovery: heal to nine healthy nodes seeing three zones of three; convergence: heal to both replica zones\n" +
		" acknowledging zone-a's change log as it stood at the heal)\n")

	fmt.Fprintf(&b, "\nacknowledged keys %d (6 seeded), acknowledged ciphertexts %d; keys re-enabled before the checks %d\n",
		keys, sealed, s.repaired)
	verdict := "ok"
	if s.verifyErr != nil {
		verdict = s.verifyErr.Error()
	}
	fmt.Fprintf(&b, "keyzone cluster verify after the workload: %s in %v (%s)\n", s.verify, s.convergence.Round(time.Millisecond), verdict)
	fmt.Fprintf(&b, "keys missing in a zone %d; ciphertexts failing to decrypt in a zone %d; keys with a wrong version count %d; 5xx other than 503/504 %d; 503/504 outside a fault %d\n",
		s.missing, s.failedDecrypts, s.lostRotations, s.bad5xx, s.unforced)
	var gone []string
	for _, z := range zones {
		if d, ok := s.doomed.gone[z]; ok {
			gone = append(gone, fmt.Sprintf("%s %v", z, d.Round(time.Millisecond)))
		} else {
			gone = append(gone, z+" never")
		}
	}
	fmt.Fprintf(&b, "purged keys %d (deletion scheduled with a %v window while zone-c was cut off): gone, after the scheduling, from %s; failures %d (a key still held, a ciphertext of it still decrypting)\n",
		len(s.doomed.keys), purgeWindow, strings.Join(gone, ", "), s.purgeFailures)
	fmt.Fprintf(&b, "%s\n", s.verdict)
	fmt.Fprintf(&b, "ok ops/s before the first fault: %.1f (threshold %.0f, KZ_E2E_MIN_OPS)\ntotal %v\n",
		before, s.minRate, s.total.Round(time.Second))
	return b.String()
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
