package main

import (
	"strings"
	"testing"
)

// An unknown part is refused before anything is started.
func TestBench_OnlyRefusesUnknownParts(t *testing.T) {
	_, err := runRoot(t, "bench", "--only", "crypto,disk")
	if err == nil || !strings.Contains(err.Error(), `unknown part "disk"`) || !strings.Contains(err.Error(), "crypto, writes, lag") {
		t.Fatalf("bench --only crypto,disk: err = %v, want the unknown part named with the known ones", err)
	}
}
